"""tai64n: put a TAI64N stamp (``@`` + 24 hex digits + space) before each line.

Whole buffers, not lines: one stamp is taken per read, at the moment the
read returns (the reference takes one per line, microseconds apart, when it
reaches the line's first byte in its buffer), and every line that begins in
that read gets it. Everything a read gave is written before the next read
blocks, so a line comes out as soon as it is complete, and so does a partial
last line, without a newline, as the reference does. Exit 0 at end of
input, 111 on a read or write error; SIGPIPE kills us as it kills the
reference.
"""

import os
import signal
import sys

from dtd import tai64
from dtd.diag import EXIT_TEMP

BUFSIZE = 65536


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except InterruptedError:
            continue


def stamp(data: bytes, at_start: bool, label: bytes) -> bytes:
    """data with label before each line that starts in it."""
    prefix = label if at_start else b""
    if data.endswith(b"\n"):
        return prefix + data[:-1].replace(b"\n", b"\n" + label) + b"\n"
    return prefix + data.replace(b"\n", b"\n" + label)


def main(argv: list[str] | None = None) -> int:
    """tai64n takes no arguments and ignores any it is given."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    at_start = True
    try:
        while True:
            try:
                data = os.read(0, BUFSIZE)
            except InterruptedError:
                continue
            if not data:
                return 0
            label = tai64.to_hex(tai64.now()).encode() + b" "
            write_all(1, stamp(data, at_start, label))
            at_start = data.endswith(b"\n")
    except OSError:
        return EXIT_TEMP


if __name__ == "__main__":
    sys.exit(main())
