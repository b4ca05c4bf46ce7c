"""pgrphack CHILD...: run CHILD in a new session, hence a new process group.

The reference calls setsid() and ignores its failure (a process group
leader cannot start a session; the child then runs where it is).
"""

import os
import sys

from dtd.diag import EXIT_USAGE, say
from dtd.env.pathexec import run

PROG = "pgrphack"


def main(argv: list[str] | None = None) -> int:
    """argv: the arguments after the program name (default sys.argv[1:])."""
    args = [os.fsencode(a) for a in (sys.argv[1:] if argv is None else argv)]
    if not args:
        say("pgrphack: usage: pgrphack child")
        return EXIT_USAGE
    try:
        os.setsid()
    except OSError:
        pass
    run(PROG, args)


if __name__ == "__main__":
    sys.exit(main())
