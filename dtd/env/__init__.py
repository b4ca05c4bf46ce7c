"""setuidgid, envuidgid, envdir, softlimit, setlock, pgrphack, fghack."""
