"""Running a client and capturing what it did, for the client test modules."""

import os
import subprocess
from pathlib import Path

Result = tuple[int, bytes, bytes]


def run(argv: list[str | bytes | Path], cwd: Path, stdin: bytes = b"") -> Result:
    """(exit code, stdout, stderr) of argv run in cwd."""
    p = subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


SETPRIV = "/usr/bin/setpriv"


def can_lose_dac() -> bool:
    return os.geteuid() == 0 and os.path.exists(SETPRIV)


def without_dac(argv: list[str | bytes | Path]) -> list[str | bytes | Path]:
    """argv run as root but without the capabilities that bypass file modes,
    so that a mode of 000 gives "access denied" as it would to another user
    (the interpreter of our clients lives under /root, out of reach of
    other users)."""
    return [SETPRIV, "--bounding-set", "-dac_override,-dac_read_search", *argv]
