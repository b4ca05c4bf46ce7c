"""djb's pathexec: run a child found on $PATH, in a modified environment.

Differences from Python's os.execvpe that the reference's users can see, and
that we therefore keep:

- the search never falls back to /bin/sh for a file without a #! line
  (``exec format error``), and an empty $PATH entry means the current
  directory;
- a file that exists but cannot be run (EACCES, EPERM, EISDIR) does not end
  the search, but its error is the one reported if nothing else runs; any
  other error (ENOEXEC, ENOTDIR, ...) ends the search at once;
- $PATH is read from the environment we were started with, even when the
  child gets a new one (envdir with a PATH file);
- the environment is built as pathexec_env builds it: a variable that is
  set or removed leaves its place to the last variable of the list, and the
  new value goes at the end, so ``env`` prints the same order.
"""

from __future__ import annotations

import errno
import os
import signal

from dtd.diag import error_str, fatal

# the typing module costs about 2 ms at start-up, paid before every child
# runs; mypy takes any name TYPE_CHECKING as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

DEFAULT_PATH = b"/bin:/usr/bin"
# errors after which the search goes on to the next $PATH entry
_GO_ON = (errno.EACCES, errno.EPERM, errno.EISDIR)


def environ(changes: list[tuple[bytes, bytes | None]]) -> dict[bytes, bytes]:
    """The child's environment: ours with each (name, value) applied in order.

    A value of None removes the variable. A name holding ``=`` is not
    refused, as it is not by the reference: ``X=Y`` with value ``v`` sets
    X to ``Y=v``, and with value None sets X to ``Y``.
    """
    env = [k + b"=" + v for k, v in os.environb.items()]
    for name, value in changes:
        entry = name if value is None else name + b"=" + value
        split = entry.find(b"=")
        if split < 0:
            split = len(entry)
        key = entry[:split] + b"="
        for t, old in enumerate(env):
            if old.startswith(key):
                env[t] = env[-1]
                env.pop()
                break
        if split < len(entry):
            env.append(entry)
    result: dict[bytes, bytes] = {}
    for entry in env:
        # os.execve joins name and value with "=" and refuses a name with
        # "=" after its first byte: an entry of an envdir file whose name
        # starts with "=" ("=x=val") is split after that first "="
        k, _, v = entry[1:].partition(b"=")
        result.setdefault(entry[:1] + k, v)
    return result


def default_signals() -> None:
    """Give the child the dispositions the reference's children get: Python
    ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across
    execve."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)


def search(argv: list[bytes], env: dict[bytes, bytes] | None = None) -> int:
    """Exec argv[0] as pathexec_run does; return the errno if nothing ran."""
    file = argv[0]
    if env is None:
        env = dict(os.environb)
    if not file:
        # os.execve refuses an empty argv[0], execve(2) does not; the paths
        # tried here all end in "/" and cannot run, so only the error matters
        argv = [b"?"] + argv[1:]
    if b"/" in file:
        try:
            os.execve(file, argv, env)
        except OSError as e:
            return e.errno or 0
    saved = 0
    err = errno.ENOENT
    for d in os.environb.get(b"PATH", DEFAULT_PATH).split(b":"):
        try:
            os.execve((d or b".") + b"/" + file, argv, env)
        except OSError as e:
            err = e.errno or 0
            if err != errno.ENOENT:
                saved = err
                if err not in _GO_ON:
                    return err
    return saved or err


def run(prog: str, argv: list[bytes], env: dict[bytes, bytes] | None = None) -> NoReturn:
    """Exec the child or die as the reference dies: ``unable to run X: why``."""
    default_signals()
    err = search(argv, env)
    fatal(prog, "unable to run ", argv[0], ": ", error_str(err))
