"""readproctitle L... D: show what arrives on stdin in our own command line.

D, the last argument, must be at least five bytes (the reference exits 100
in silence otherwise, and when there is no argument at all). D is filled
with dots, then every byte read (but NUL, which is dropped) is pushed in at
its right end, shifting the older bytes out to the left, except for three
dots that always stay; ps and /proc/PID/cmdline show the result.

How, in Python: the kernel runs us as ``python SCRIPT L... D``, so the
command line starts with the interpreter. D's bytes are written in place in
the argv area (its address is in /proc/self/stat), which changes what
/proc/PID/cmdline shows without moving anything; setproctitle cannot do
this, since it rewrites the whole area as one string and the NULs between
the arguments are lost. Then prctl(PR_SET_MM_MAP), which needs no
privilege, moves the start of the area to SCRIPT, so the command line reads
``SCRIPT L... D`` as the reference's does (SCRIPT is the full path of our
script: the kernel replaces the name we were called by with it). Where the
kernel refuses (no CONFIG_CHECKPOINT_RESTORE, a seccomp filter), the
interpreter stays in front and everything else still works.
"""

import ctypes
import os
import signal
import struct
import sys

from dtd.diag import EXIT_TEMP, EXIT_USAGE

KEEP = 3  # dots that always stay at the left of D
PR_SET_MM = 35
PR_SET_MM_MAP = 14
# struct prctl_mm_map: eleven addresses, the auxv pointer, auxv size, exe fd
MM_MAP = struct.Struct("=12QIi")


def stat_fields() -> list[int]:
    """/proc/self/stat as numbers; index n is field n+1 of proc(5)."""
    with open("/proc/self/stat", "rb") as f:
        raw = f.read()
    rest = raw.rpartition(b")")[2].split()
    return [0, 0] + [int(x) if x.lstrip(b"-").isdigit() else 0 for x in rest]


def argv_area() -> tuple[int, int]:
    f = stat_fields()
    return f[47], f[48]  # arg_start, arg_end


def drop_interpreter(libc: ctypes.CDLL, start: int, end: int, nargs: int) -> None:
    """Make the command line begin with our last nargs arguments."""
    area = ctypes.string_at(start, end - start)
    parts = area[:-1].split(b"\0")
    if len(parts) <= nargs:
        return
    new_start = start + sum(len(p) + 1 for p in parts[:-nargs])
    f = stat_fields()
    libc.sbrk.restype = ctypes.c_void_p
    libc.sbrk.argtypes = [ctypes.c_long]
    brk = libc.sbrk(0)
    mm = MM_MAP.pack(f[25], f[26], f[44], f[45], f[46], brk or 0, f[27],
                     new_start, end, f[49], f[50], 0, 0, -1)
    buf = ctypes.create_string_buffer(mm, len(mm))
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p,
                           ctypes.c_ulong, ctypes.c_ulong]
    libc.prctl(PR_SET_MM, PR_SET_MM_MAP, ctypes.addressof(buf), len(mm), 0)


class Title:
    """The bytes of our last argument, in the argv area."""

    def __init__(self, nargs: int, last: bytes) -> None:
        size = self.size = len(last)
        self.addr = 0
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            start, end = argv_area()
        except (OSError, IndexError, ValueError):
            return
        # the area ends with D and its NUL; check that it is where we think
        if end - 2 - size < start:
            return
        if ctypes.string_at(end - 2 - size, size + 2) != b"\0" + last + b"\0":
            return
        self.addr = end - 1 - size
        drop_interpreter(libc, start, end, nargs)

    def show(self, data: bytes) -> None:
        if self.addr:
            ctypes.memmove(self.addr, data, self.size)


def main(argv: list[str] | None = None) -> int:
    """argv: the arguments after the program name (default sys.argv[1:]).
    Only the real command line (argv None) can be rewritten."""
    args = [os.fsencode(a) for a in (sys.argv[1:] if argv is None else argv)]
    if not args or len(args[-1]) < 5:
        return EXIT_USAGE
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    size = len(args[-1])
    title = Title(len(args) + 1, args[-1]) if argv is None else None
    shown = bytearray(b"." * size)
    if title is not None:
        title.show(bytes(shown))
    room = size - KEEP
    while True:
        try:
            data = os.read(0, 4096)
        except InterruptedError:
            continue
        except OSError:
            return EXIT_TEMP
        if not data:
            return 0
        # the reference drops NUL bytes: one would end the argument early
        data = data.replace(b"\0", b"")
        shown[KEEP:] = (bytes(shown[KEEP:]) + data)[-room:]
        if title is not None:
            title.show(bytes(shown))


if __name__ == "__main__":
    sys.exit(main())
