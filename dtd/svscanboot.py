"""svscanboot [DIR]: start svscan on DIR with its errors shown by readproctitle.

Debian's svscanboot is this shell script, run from init with no argument:

    PATH=/command:/usr/local/bin:/usr/local/sbin:/bin:/sbin:/usr/bin:/usr/sbin:/usr/X11R6/bin
    exec </dev/null >/dev/null 2>/dev/null
    svc -dx /etc/service/* /etc/service/*/log
    env - PATH=$PATH svscan /etc/service 2>&1 | \\
    env - PATH=$PATH readproctitle service errors: <400 dots>

We do the same, step by step: the svc stops the supervise processes a
previous svscan left behind. Two additions: DIR (default /etc/service, the
script ignores arguments), and the directory of our own console scripts
goes first in PATH, so that our svc, svscan and readproctitle are the ones
found. The exit code is readproctitle's, as the shell's is.
"""

import glob
import os
import signal
import subprocess
import sys
import sysconfig

from dtd.env.pathexec import default_signals

PATH = "/command:/usr/local/bin:/usr/local/sbin:/bin:/sbin:/usr/bin:/usr/sbin:/usr/X11R6/bin"
SCAN = "/etc/service"
DOTS = "." * 400


def search_path() -> str:
    ours = sysconfig.get_path("scripts")
    if not ours or ours in PATH.split(":"):
        return PATH
    return ours + ":" + PATH


def sh_glob(pattern: str) -> list[str]:
    """The shell's expansion: sorted matches, or the pattern itself if none."""
    return sorted(glob.glob(pattern)) or [pattern]


def spawn(argv: list[str], env: dict[str, str], **kw: int) -> subprocess.Popen[bytes] | None:
    try:
        return subprocess.Popen(argv, env=env, stdin=kw.get("stdin", subprocess.DEVNULL),
                                stdout=kw.get("stdout", subprocess.DEVNULL),
                                stderr=kw.get("stderr", subprocess.DEVNULL))
    except OSError:
        # the shell would say "not found" on its stderr, which is /dev/null
        return None


def main(argv: list[str] | None = None) -> int:
    """argv: the arguments after the program name (default sys.argv[1:])."""
    args = sys.argv[1:] if argv is None else argv
    scan = args[0] if args else SCAN
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    default_signals()
    path = search_path()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)
    env = dict(os.environ, PATH=path)
    top = glob.escape(scan)
    svc = spawn(["svc", "-dx", *sh_glob(top + "/*"), *sh_glob(top + "/*/log")], env)
    if svc is not None:
        svc.wait()
    bare = {"PATH": path}
    r, w = os.pipe()
    scanner = spawn(["svscan", scan], bare, stdout=w, stderr=w)
    os.close(w)
    title = spawn(["readproctitle", "service", "errors:", DOTS], bare, stdin=r)
    os.close(r)
    code = 127
    if title is not None:
        code = title.wait()
        code = code if code >= 0 else 128 - code
    if scanner is not None:
        scanner.wait()
    return code


if __name__ == "__main__":
    sys.exit(main())
