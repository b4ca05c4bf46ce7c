"""dtd: daemontools, rebuilt in Python as a modern service supervisor."""

import os as _os

__version__ = "0.1.0"


def _undo_locale_coercion() -> None:
    """PEP 538: an interpreter started in the C locale puts LC_CTYPE=C.UTF-8
    into its own environment, and every program it starts would inherit it:
    ./run under supervise, the program after envdir or setuidgid. The
    reference passes the environment on as it got it, so the variable goes
    again unless it was there at exec (/proc/self/environ keeps that)."""
    if "LC_CTYPE" not in _os.environ:
        return
    try:
        with open("/proc/self/environ", "rb") as f:
            given = f.read()
    except OSError:
        return
    if not given.startswith(b"LC_CTYPE=") and b"\0LC_CTYPE=" not in given:
        del _os.environ["LC_CTYPE"]


_undo_locale_coercion()
