"""fghack CHILD...: an anti-backgrounding tool.

The child runs with 31 extra descriptors (the pipe's write end and 30 dups
of it, as the reference makes them). A daemon that forks and exits in the
background keeps them open, so fghack stays in the foreground, reading and
discarding anything written there, until every copy is closed; then it
waits for its child and exits with its exit code (111 and ``child crashed``
if the child was killed by a signal).
"""

import os
import signal
import sys

from dtd.diag import EXIT_TEMP, EXIT_USAGE, error_str, fatal, say
from dtd.env.pathexec import default_signals, search

PROG = "fghack"
DUPS = 30


def child(args: list[bytes], r: int, w: int) -> None:
    os.close(r)
    for _ in range(DUPS):
        os.set_inheritable(os.dup(w), True)
    os.set_inheritable(w, True)
    default_signals()
    err = search(args)
    say("fghack: fatal: unable to run ", args[0], ": ", error_str(err))
    os._exit(EXIT_TEMP)


def main(argv: list[str] | None = None) -> int:
    """argv: the arguments after the program name (default sys.argv[1:])."""
    args = [os.fsencode(a) for a in (sys.argv[1:] if argv is None else argv)]
    if not args:
        say("fghack: usage: fghack child")
        return EXIT_USAGE
    # ^C ends us as it ends the reference: no traceback
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        r, w = os.pipe()
    except OSError as e:
        fatal(PROG, "unable to create pipe: ", error_str(e.errno))
    try:
        pid = os.fork()
    except OSError as e:
        fatal(PROG, "unable to fork: ", error_str(e.errno))
    if pid == 0:
        try:
            child(args, r, w)
        finally:
            os._exit(EXIT_TEMP)
    os.close(w)
    while True:
        try:
            if not os.read(r, 65536):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    try:
        _, wstat = os.waitpid(pid, 0)
    except OSError as e:
        fatal(PROG, "wait failed: ", error_str(e.errno))
    if os.WIFSIGNALED(wstat):
        fatal(PROG, "child crashed")
    return os.WEXITSTATUS(wstat)


if __name__ == "__main__":
    sys.exit(main())
