"""inotify(7) through ctypes: the standard library has no binding.

Only what the root needs: watch a directory, read batches of events.
"""

import ctypes
import os
import struct

IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len
# the process's own symbols include libc's; find_library would run ldconfig
_libc = ctypes.CDLL(None, use_errno=True)


def _check(r: int) -> int:
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


class Inotify:
    def __init__(self) -> None:
        self.fd = _check(_libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))

    def add_watch(self, path: str, mask: int) -> int:
        return _check(_libc.inotify_add_watch(self.fd, os.fsencode(path), mask))

    def rm_watch(self, wd: int) -> None:
        _libc.inotify_rm_watch(self.fd, wd)

    def read(self) -> list[tuple[int, int, str]]:
        """Pending events as (watch, mask, name); empty when none."""
        events: list[tuple[int, int, str]] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return events
            pos = 0
            while pos + _EVENT.size <= len(data):
                wd, mask, _, size = _EVENT.unpack_from(data, pos)
                pos += _EVENT.size
                name = os.fsdecode(data[pos:pos + size].rstrip(b"\0"))
                pos += size
                events.append((wd, mask, name))

    def close(self) -> None:
        os.close(self.fd)
