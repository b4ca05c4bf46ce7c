"""TAI64 and TAI64N labels (https://cr.yp.to/libtai/tai64.html).

A TAI64 label is 2^62 + 10 + Unix seconds, big-endian in 8 bytes (the 10 is
the TAI-UTC offset of 1970 that djb's code adds; leap seconds since are not
counted, exactly as daemontools does). TAI64N appends 4 bytes of nanoseconds.
"""

import struct
import time

BASE = 4611686018427387914  # 2**62 + 10
TAI64N_SIZE = 12
_PACK = struct.Struct(">QL")


def pack(seconds: int, nanoseconds: int = 0) -> bytes:
    """12-byte TAI64N label for a Unix time."""
    return _PACK.pack(BASE + seconds, nanoseconds)


def unpack(label: bytes) -> tuple[int, int]:
    """Unix seconds and nanoseconds of a 12-byte TAI64N label."""
    sec, nano = _PACK.unpack_from(label)
    return sec - BASE, nano


def now() -> bytes:
    ns = time.time_ns()
    return pack(ns // 1_000_000_000, ns % 1_000_000_000)


def to_hex(label: bytes) -> str:
    """``@`` and 24 hex digits, as tai64n and multilog print it."""
    return "@" + label.hex()


def from_hex(text: str) -> bytes | None:
    """The label of an ``@``-stamp, or None when text is not one."""
    if len(text) != 25 or text[0] != "@":
        return None
    try:
        label = bytes.fromhex(text[1:])
    except ValueError:
        return None
    # fromhex skips white space; a stamp has none
    return label if len(label) == TAI64N_SIZE else None
