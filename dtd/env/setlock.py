"""setlock [-nNxX] FILE CHILD...: run CHILD holding an exclusive flock on FILE.

FILE is opened for appending (created 0600 if missing, never truncated, never
removed); the descriptor is inherited by the child, so the lock lasts until
every copy of it is closed. -n: give up at once if FILE is locked; -x: exit
0, silently, if FILE cannot be opened or locked.
"""

import errno
import fcntl
import os
import signal
import sys

from dtd.diag import EXIT_USAGE, error_str, fatal, say
from dtd.env.pathexec import run
from dtd.env.sgetopt import Options, progname

PROG = "setlock"


def usage() -> int:
    say("setlock: usage: setlock [ -nNxX ] file program [ arg ... ]")
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    """argv: the arguments after the program name (default sys.argv[1:])."""
    args = [os.fsencode(a) for a in (sys.argv[1:] if argv is None else argv)]
    nodelay = quiet = False
    opts = Options(progname(PROG, argv), args, b"nNxX")
    for opt, _ in opts:
        if opt == ord("n"):
            nodelay = True
        elif opt == ord("N"):
            nodelay = False
        elif opt == ord("x"):
            quiet = True
        elif opt == ord("X"):
            quiet = False
        else:
            return usage()
    rest = opts.rest
    if len(rest) < 2:
        return usage()
    file, child = rest[0], rest[1:]
    try:
        fd = os.open(file, os.O_WRONLY | os.O_NONBLOCK | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as e:
        if quiet:
            return 0
        fatal(PROG, "unable to open ", file, ": ", error_str(e.errno))
    # waiting for the lock may be long: ^C ends us as it ends the reference
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if nodelay else 0))
            break
        except InterruptedError:
            continue
        except OSError as e:
            if quiet:
                return 0
            # flock says EWOULDBLOCK, which is EAGAIN on Linux: djb's table
            # words it "temporary failure"
            fatal(PROG, "unable to lock ", file, ": ", error_str(e.errno or errno.EAGAIN))
    os.set_inheritable(fd, True)
    run(PROG, child)


if __name__ == "__main__":
    sys.exit(main())
