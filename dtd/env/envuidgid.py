"""envuidgid ACCOUNT CHILD...: run CHILD with $UID and $GID set to ACCOUNT's.

GID is set before UID, so both land at the end of the environment in that
order, as with the reference. Exit 100 for usage, 111 for an unknown account
or a failed exec; otherwise the child's exit code.
"""

import os
import pwd
import sys

from dtd.diag import EXIT_USAGE, fatal, say
from dtd.env.pathexec import environ, run

PROG = "envuidgid"


def main(argv: list[str] | None = None) -> int:
    """argv: the arguments after the program name (default sys.argv[1:])."""
    args = [os.fsencode(a) for a in (sys.argv[1:] if argv is None else argv)]
    if len(args) < 2:
        say("envuidgid: usage: envuidgid account child")
        return EXIT_USAGE
    account = args[0]
    try:
        pw = pwd.getpwnam(os.fsdecode(account))
    except (KeyError, ValueError):
        fatal(PROG, "unknown account ", account)
    env = environ([(b"GID", b"%d" % pw.pw_gid), (b"UID", b"%d" % pw.pw_uid)])
    run(PROG, args[1:], env)


if __name__ == "__main__":
    sys.exit(main())
