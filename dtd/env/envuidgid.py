"""envuidgid ACCOUNT CHILD...: run CHILD with $UID and $GID set to ACCOUNT's.

GID is set before UID, so both land at the end of the environment in that
order, as with the reference. Exit 100 for usage, 111 for an unknown account
or a failed exec; otherwise the child's exit code.
"""

import sys

from dtd.env import account
from dtd.env.pathexec import environ, run

PROG = "envuidgid"


def main(argv: list[str] | None = None) -> int:
    """argv: the arguments after the program name (default sys.argv[1:])."""
    pw, child = account.parse(PROG, argv)
    env = environ([(b"GID", b"%d" % pw.pw_gid), (b"UID", b"%d" % pw.pw_uid)])
    run(PROG, child, env)


if __name__ == "__main__":
    sys.exit(main())
