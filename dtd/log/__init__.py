"""multilog, tai64n, tai64nlocal, readproctitle."""
