"""envdir DIR CHILD...: run CHILD with the environment changed by DIR's files.

Each file of DIR whose name does not start with a dot names a variable; its
first line, without trailing spaces and tabs and with NUL bytes turned into
newlines, is the value; an empty file removes the variable. Quirks of the
reference kept here, because the binary is the specification:

- usage exits 111, not 100;
- a subdirectory is not skipped: reading it fails (``is a directory``);
- a name holding ``=`` is not refused (see pathexec.environ);
- the read buffer is reused from file to file, so a name that vanished
  between readdir and open (a dangling symlink) gets the previous file's
  value, terminated by a newline where the reference's NUL terminator was.
"""

import os
import sys

from dtd.diag import EXIT_TEMP, error_str, fatal, say
from dtd.env.pathexec import environ, run

PROG = "envdir"


def read(name: bytes, sa: bytes) -> bytes:
    """openreadclose: the file's bytes, or sa unchanged if it does not exist."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return sa
    try:
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(fd, 65536)
            except InterruptedError:
                continue
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def value(sa: bytes) -> bytes:
    """The first line, trailing blanks removed, NULs made newlines."""
    line = sa.partition(b"\n")[0].rstrip(b" \t")
    return line.replace(b"\0", b"\n")


def main(argv: list[str] | None = None) -> int:
    """argv: the arguments after the program name (default sys.argv[1:])."""
    args = [os.fsencode(a) for a in (sys.argv[1:] if argv is None else argv)]
    if len(args) < 2:
        say("envdir: usage: envdir dir child")
        return EXIT_TEMP
    d = args[0]
    try:
        orig = os.open(b".", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        fatal(PROG, "unable to switch to current directory: ", error_str(e.errno))
    try:
        os.chdir(d)
    except OSError as e:
        fatal(PROG, "unable to switch to directory ", d, ": ", error_str(e.errno))
    try:
        names = os.listdir(b".")
    except OSError as e:
        fatal(PROG, "unable to read directory ", d, ": ", error_str(e.errno))
    changes: list[tuple[bytes, bytes | None]] = []
    sa = b""
    for name in names:
        if name.startswith(b"."):
            continue
        try:
            sa = read(name, sa)
        except OSError as e:
            fatal(PROG, "unable to read ", d, "/", name, ": ", error_str(e.errno))
        if sa:
            v = value(sa)
            changes.append((name, v))
            sa = v + b"\0"
        else:
            changes.append((name, None))
    try:
        os.fchdir(orig)
    except OSError as e:
        fatal(PROG, "unable to switch to starting directory: ", error_str(e.errno))
    os.close(orig)
    run(PROG, args[1:], environ(changes))


if __name__ == "__main__":
    sys.exit(main())
