"""Process titles: what ps shows (the argv area) and /proc/PID/comm.

The setproctitle package's __init__ imports logging, and so threading, whose
at-fork hook runs in every forked child and copies about a hundred shared
pages into each worker (measured with bench/worker_pages.py: 38 pages a
worker without it, 142 with it). Its C extension does the work by itself, so
it is loaded here directly, without the package around it.
"""

import importlib.machinery
import importlib.util
import os
from types import ModuleType


def _load() -> ModuleType | None:
    spec = importlib.util.find_spec("setproctitle")
    if spec is None or not spec.submodule_search_locations:
        return None
    for directory in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(directory, "_setproctitle" + suffix)
            if os.path.exists(path):
                ext = importlib.util.spec_from_file_location("_setproctitle", path)
                if ext is None or ext.loader is None:
                    return None
                module = importlib.util.module_from_spec(ext)
                ext.loader.exec_module(module)
                return module
    return None


try:
    _spt = _load()
except ImportError:
    _spt = None


def safe(text: str) -> str:
    """A title from file names, which may hold any byte."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def set_title(title: str, comm: str) -> None:
    """Set what ps shows to title, and /proc/PID/comm to comm (so that
    ``pgrep -x supervise`` finds workers whatever their titles)."""
    if _spt is not None:
        _spt.setproctitle(safe(title))
        _spt.setthreadtitle(comm)
