"""dtd as users get it: a regular (not editable) install in a virtualenv
whose scripts have a real interpreter in their shebang.

The development venv is an editable install; its import hook costs about
10 ms at every process start, and a version manager's shim in a shebang
costs about 100 ms. Neither is what a user of a packaged dtd pays, so the
bench builds its own venv from the working tree, once per run, and every
bench module that measures dtd uses it through bindir().
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_bin: Path | None = None
_top: Path | None = None


def _interpreter() -> str:
    # The interpreter itself, not a venv's symlink or a shim in front of it.
    base = getattr(sys, "_base_executable", sys.executable)
    return os.path.realpath(base)


def _copy_tree(dest: Path) -> None:
    """The working tree as git sees it (tracked files and new ones not
    ignored), so a build never picks up .venv, build/ or stale egg-info."""
    names = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True).stdout.split(b"\0")
    for raw in names:
        if not raw:
            continue
        rel = os.fsdecode(raw)
        src = ROOT / rel
        if not src.is_file():
            continue  # deleted in the working tree, still in the index
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)


def build(top: Path) -> Path:
    """Make top/venv with dtd installed from a copy of the working tree;
    return its bin directory."""
    src = top / "src"
    src.mkdir()
    _copy_tree(src)
    venv = top / "venv"
    subprocess.run([_interpreter(), "-m", "venv", str(venv)], check=True)
    # a current pip, as a user installing today gets: the console-script
    # wrapper of the pip bundled with 3.13.0 imports re, 6 ms per command
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                    "--disable-pip-version-check", "--upgrade", "pip"],
                   capture_output=True, check=False)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
           "--disable-pip-version-check", str(src)]
    done = subprocess.run(pip, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip install of the working tree failed:\n{done.stdout}{done.stderr}")
    shutil.rmtree(src)
    return venv / "bin"


def bindir() -> Path:
    """The bench venv's bin directory, built on first use and removed when
    the bench exits."""
    global _bin, _top
    if _bin is None:
        _top = Path(tempfile.mkdtemp(prefix="dtd-bench-venv-"))
        atexit.register(cleanup)
        _bin = build(_top)
    return _bin


def cleanup() -> None:
    global _bin, _top
    if _top is not None:
        shutil.rmtree(_top, ignore_errors=True)
    _bin = _top = None

