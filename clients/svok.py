"""svok DIR: exit 0 if a supervise runs in DIR, 100 if not, as daemontools' svok.

Only the first argument counts; the rest are ignored, as they are by the
reference. A missing supervise/ok means "not running" (100, silently), like a
FIFO nobody reads; any other failure to open it is a fatal 111.
"""

import errno
import os
import sys

from dtd.diag import EXIT_USAGE, fatal, reason, usage

PROG = "svok"
OK = b"supervise/ok"


def main(argv: list[str] | None = None) -> int:
    """argv: the arguments after the program name (default sys.argv[1:])."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        usage(PROG, "svok dir")
    d = os.fsencode(args[0])
    try:
        os.chdir(d)
    except OSError as e:
        fatal(PROG, "unable to chdir to ", d, ": ", reason(e))
    try:
        fd = os.open(OK, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ENXIO, errno.ENOENT):
            return EXIT_USAGE
        fatal(PROG, "unable to open ", d, b"/", OK, ": ", reason(e))
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
