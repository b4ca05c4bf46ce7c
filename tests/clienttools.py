"""Running a client and capturing what it did, for the client test modules."""

import subprocess
from pathlib import Path

Result = tuple[int, bytes, bytes]


def run(argv: list[str | bytes | Path], cwd: Path, stdin: bytes = b"") -> Result:
    """(exit code, stdout, stderr) of argv run in cwd."""
    p = subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, timeout=30)
    return p.returncode, p.stdout, p.stderr
