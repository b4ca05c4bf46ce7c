"""The scan directory: which entries are services, as svscan decides it.

Names starting with ``.`` are skipped; an entry is a service if stat() (which
follows symbolic links) says it is a directory; a service is identified by its
device and inode, so a renamed service directory is the same service.
"""

import os
import stat
from typing import NamedTuple

from dtd.diag import reason


class Entry(NamedTuple):
    name: str
    dev: int
    ino: int


def scan(directory: str) -> tuple[list[Entry], list[str]]:
    """The services in directory, and svscan's warnings for what it skipped.

    Raises OSError when the directory itself cannot be read.
    """
    entries = []
    warnings = []
    for name in sorted(os.listdir(directory)):
        if name.startswith("."):
            continue
        try:
            st = os.stat(os.path.join(directory, name))
        except OSError as e:
            warnings.append(f"unable to stat {name}: {reason(e)}")
            continue
        if stat.S_ISDIR(st.st_mode):
            entries.append(Entry(name, st.st_dev, st.st_ino))
    return entries, warnings


def has_log(directory: str, name: str) -> bool:
    return os.path.isdir(os.path.join(directory, name, "log"))


def runnable(directory: str, name: str) -> bool:
    """True once name/run is an executable file: a directory that is still
    being filled in is started when it is ready rather than failing first."""
    run = os.path.join(directory, name, "run")
    return os.path.isfile(run) and os.access(run, os.X_OK)
