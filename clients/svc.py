"""svc -udopchaitkx DIR...: send control bytes to supervise, as daemontools' svc.

Each option letter is the byte written into DIR/supervise/control; a letter
given twice is sent once, in order of first appearance. Problems with one
directory are warnings and do not change the exit code (0); only a bad option
(100) or losing the way back to the starting directory (111) is fatal.
"""

import errno
import os
import sys

from dtd.diag import EXIT_USAGE, fatal, reason, say, warn

PROG = "svc"
OPTIONS = b"udopchaitkx"
CONTROL = b"supervise/control"
HELP = ("svc options: u up, d down, o once, x exit, p pause, c continue,"
        " h hup, a alarm, i interrupt, t term, k kill")


def getopt(prog: bytes, args: list[bytes]) -> tuple[bytes, list[bytes]]:
    """djb's sgetopt for flag-only options: the commands and the operands.

    Quirks kept from the reference: any argument starting with "--" (not only
    "--" itself) ends the options and is dropped; a lone "-" is an operand;
    inside a cluster "-" is just an illegal option letter.
    """
    data = bytearray()
    i = 0
    while i < len(args):
        arg = args[i]
        if len(arg) < 2 or arg[0] != ord("-"):
            break
        i += 1
        if arg[1] == ord("-"):
            break
        for c in arg[1:]:
            if c not in OPTIONS:
                say(prog, b": illegal option -- ", bytes((c,)))
                say(HELP)
                raise SystemExit(EXIT_USAGE)
            if c not in data:
                data.append(c)
    return bytes(data), args[i:]


def control(d: bytes, data: bytes) -> None:
    try:
        os.chdir(d)
    except OSError as e:
        warn(PROG, "unable to chdir to ", d, ": ", reason(e))
        return
    try:
        fd = os.open(CONTROL, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        # ENXIO: nobody has the FIFO open for reading
        why = "supervise not running" if e.errno == errno.ENXIO else reason(e)
        warn(PROG, "unable to control ", d, ": ", why)
        return
    try:
        # non-blocking only for the open; a full FIFO must make us wait
        os.set_blocking(fd, True)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as e:
        warn(PROG, "error writing commands to ", d, ": ", reason(e))
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    """argv: the arguments after the program name (default sys.argv[1:])."""
    if argv is None:
        prog = os.fsencode(sys.argv[0]).rpartition(b"/")[2]
        argv = sys.argv[1:]
    else:
        prog = PROG.encode()
    data, dirs = getopt(prog, [os.fsencode(a) for a in argv])
    try:
        orig = os.open(".", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        fatal(PROG, "unable to open current directory: ", reason(e))
    for d in dirs:
        control(d, data)
        try:
            os.fchdir(orig)
        except OSError as e:
            fatal(PROG, "unable to set directory: ", reason(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
