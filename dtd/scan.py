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

    A plain directory is told by the directory entry's own type and named
    by its inode, with no stat() call: the rescan every five seconds then
    costs one getdents for a hundred services. A symbolic link is followed
    with stat(), as svscan does. Raises OSError when the directory itself
    cannot be read.
    """
    entries = []
    warnings = []
    dev = os.stat(directory).st_dev
    with os.scandir(directory) as it:
        for e in it:
            name = e.name
            if name.startswith("."):
                continue
            try:
                if e.is_symlink():
                    st = os.stat(e.path)
                    if stat.S_ISDIR(st.st_mode):
                        entries.append(Entry(name, st.st_dev, st.st_ino))
                elif e.is_dir(follow_symlinks=False):
                    entries.append(Entry(name, dev, e.inode()))
            except OSError as err:
                warnings.append(f"unable to stat {name}: {reason(err)}")
    entries.sort()
    return entries, warnings


def has_log(directory: str, name: str) -> bool:
    return os.path.isdir(os.path.join(directory, name, "log"))


def runnable(directory: str, name: str) -> bool:
    """True once name/run is an executable file: a directory that is still
    being filled in is started when it is ready rather than failing first."""
    run = os.path.join(directory, name, "run")
    return os.path.isfile(run) and os.access(run, os.X_OK)
