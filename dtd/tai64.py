"""TAI64 and TAI64N labels (https://cr.yp.to/libtai/tai64.html).

A TAI64 label is 2^62 + 10 + Unix seconds, big-endian in 8 bytes (the 10 is
the TAI-UTC offset of 1970 that djb's code adds; leap seconds since are not
counted, exactly as daemontools does). TAI64N appends 4 bytes of nanoseconds.
"""

import time

BASE = 4611686018427387914  # 2**62 + 10
TAI64N_SIZE = 12


def pack(seconds: int, nanoseconds: int = 0) -> bytes:
    """12-byte TAI64N label for a Unix time."""
    # int.to_bytes, not struct: importing struct costs every client that
    # reads a status file 0.4 ms, a tenth of its budget above bare start-up
    return (BASE + seconds).to_bytes(8, "big") + nanoseconds.to_bytes(4, "big")


def unpack(label: bytes) -> tuple[int, int]:
    """Unix seconds and nanoseconds of a 12-byte TAI64N label."""
    return int.from_bytes(label[:8], "big") - BASE, int.from_bytes(label[8:12], "big")


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
