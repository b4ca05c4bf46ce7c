"""svstat DIR...: one status line per service directory, as daemontools' svstat.

Every problem with a directory is part of its line on stdout, never a
message on stderr, and the exit code stays 0. Only the first 18 bytes of
supervise/status are read (daemontools' layout, which runit's 20-byte record
and ours begin with), so any file of 18 bytes or more is accepted.

One quirk of the reference is kept on purpose: it reads into one static
18-byte buffer and compares read()'s -1 as unsigned, so a failed read (a
status that is a directory) is not reported but shows what the buffer still
holds: zeros, the previous directory's record, or the start of a short one.
"""

import errno
import os
import sys
import time

from dtd import status, tai64

TYPE_CHECKING = False  # mypy takes any name TYPE_CHECKING as true
if TYPE_CHECKING:
    from typing import NoReturn

PROG = "svstat"
DOWN = b"down"
OK = b"supervise/ok"
STATUS = b"supervise/status"
# djb's buffer: stdout goes out in chunks of this size and at the end
BUFSIZE = 1024


# dtd.diag is imported only once something has gone wrong: svstat's usual
# run, a line per directory, is spared 0.3 ms of start-up


def reason(e: OSError) -> str:
    from dtd.diag import reason as djb
    return djb(e)


def fatal(*parts: str) -> "NoReturn":
    from dtd.diag import fatal as die
    die(PROG, *parts)


def line(d: bytes, buf: bytearray) -> bytes:
    """Everything after "DIR: " on the line for d; the caller is in d's parent.

    buf is the reference's static status buffer, shared by all directories.
    """
    try:
        os.chdir(d)
    except OSError as e:
        return b"unable to chdir: " + reason(e).encode()

    try:
        os.stat(DOWN)
        normallyup = False
    except OSError as e:
        if e.errno != errno.ENOENT:
            return b"unable to stat down: " + reason(e).encode()
        normallyup = True

    try:
        os.close(os.open(OK, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))
    except OSError as e:
        if e.errno == errno.ENXIO:
            return b"supervise not running"
        return b"unable to open supervise/ok: " + reason(e).encode()

    try:
        fd = os.open(STATUS, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        return b"unable to open supervise/status: " + reason(e).encode()
    try:
        # one read(2), as the reference does: a short read is a bad format
        data = os.read(fd, status.DJB_SIZE)
        buf[:len(data)] = data
        if len(data) < status.DJB_SIZE:
            return b"unable to read supervise/status: bad format"
    except OSError:
        pass
    finally:
        os.close(fd)
    st = status.unpack(bytes(buf))
    assert st is not None

    # Whole TAI seconds, compared unsigned as tai_less does: a time in the
    # future counts as now. The difference goes through a double (tai_approx),
    # which only matters for labels that are garbage.
    when = st.seconds + tai64.BASE
    now = int(time.time()) + tai64.BASE
    seconds = int(float(now - when)) if now > when else 0

    out = b"up (pid %d) " % st.pid if st.pid else b"down "
    out += b"%d seconds" % seconds
    if st.pid and not normallyup:
        out += b", normally down"
    if not st.pid and normallyup:
        out += b", normally up"
    if st.pid and st.paused:
        out += b", paused"
    if not st.pid and st.want == status.WANT_UP:
        out += b", want up"
    if st.pid and st.want == status.WANT_DOWN:
        out += b", want down"
    return out


def write(data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(1, view):]
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    """argv: the arguments after the program name (default sys.argv[1:])."""
    args = sys.argv[1:] if argv is None else argv
    try:
        orig = os.open(".", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        fatal("unable to open current directory: ", reason(e))
    buf = bytearray()
    record = bytearray(status.DJB_SIZE)
    for a in args:
        d = os.fsencode(a)
        buf += d + b": " + line(d, record) + b"\n"
        try:
            os.fchdir(orig)
        except OSError as e:
            # what is still buffered is lost, as with the reference's _exit
            fatal("unable to set directory: ", reason(e))
        if len(buf) >= BUFSIZE:
            cut = len(buf) - len(buf) % BUFSIZE
            write(bytes(buf[:cut]))
            del buf[:cut]
    write(bytes(buf))
    return 0


if __name__ == "__main__":
    sys.exit(main())
