"""Reading a pipe without taking from it, for readers that must not lose
what they have read when they are killed.

tee(2) copies what a pipe holds into a scratch pipe of ours and leaves it
where it was; the reader writes out what it made of the bytes, and only
then takes them out of the pipe (``consume``). Killed in between, it
leaves them to the next reader: at worst they are written twice, never
lost. The root's --log-stdout relay and multilog read this way.
"""

import ctypes
import errno
import fcntl
import os

SPLICE_F_NONBLOCK = 2

_libc = ctypes.CDLL(None, use_errno=True)
_tee = _libc.tee
_tee.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint)
_tee.restype = ctypes.c_ssize_t


class Refused(OSError):
    """tee(2) cannot be used here: fd is no pipe, or a seccomp filter
    forbids the call. The caller reads (and takes) instead."""


class Peek:
    def __init__(self, size: int) -> None:
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.fcntl(self.w, fcntl.F_SETPIPE_SZ, size)
        except OSError:
            pass  # a lower pipe-max-size: smaller pieces
        self.size = fcntl.fcntl(self.w, fcntl.F_GETPIPE_SZ)

    def peek(self, fd: int, n: int | None = None) -> bytes:
        """Up to n bytes (at most self.size) of what the pipe fd holds, left
        in it; b"" at its end (nothing held, no writer left), as read(2)
        says it. Raises BlockingIOError when it is empty, InterruptedError,
        and Refused when tee cannot be used here."""
        n = _tee(fd, self.w, min(n or self.size, self.size), SPLICE_F_NONBLOCK)
        if n < 0:
            err = ctypes.get_errno()
            if err == errno.EAGAIN:
                raise BlockingIOError(err, os.strerror(err))
            if err == errno.EINTR:
                raise InterruptedError(err, os.strerror(err))
            raise Refused(err, os.strerror(err))
        parts = []
        while n > 0:
            part = os.read(self.r, n)
            parts.append(part)
            n -= len(part)
        return b"".join(parts)

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


def consume(fd: int, n: int) -> None:
    """Take n bytes out of the pipe fd, which holds at least that many."""
    while n > 0:
        try:
            n -= len(os.read(fd, min(n, 1 << 20)))
        except InterruptedError:
            continue
        except BlockingIOError:
            return  # someone else read them (cannot happen: we are the reader)
