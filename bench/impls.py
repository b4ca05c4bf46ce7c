"""The implementations the bench compares, each described by the commands
that play the same part: the scanner, the one-directory supervisor, and the
clients. Every command is run by full path with a PATH of its own, so that a
scanner finds its own supervisor (djb's svscan runs whatever `supervise` is
first on PATH, which in a dtd checkout may well be ours)."""

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SYSTEM = Path("/usr/bin")
# Placeholders in argument templates: the (first) service directory, every
# one of them, their names, and the config file of an implementation that
# keeps its services in one (it lives beside the service directories).
DIR = "{dir}"
DIRS = "{dirs}"
NAME = "{name}"
NAMES = "{names}"
CONF = "{conf}"


@dataclass
class Impl:
    name: str
    bindir: Path
    scanner: tuple[str, ...]
    # None for an implementation whose one process supervises every service
    # (supervisord): its scanner is then started over the services' parent.
    worker: tuple[str, ...] | None
    svc_down: tuple[str, ...]
    svc_up: tuple[str, ...]
    svstat: tuple[str, ...]
    svok: tuple[str, ...] | None
    # What a ready supervisor has in DIR/supervise/: FIFOs it reads (a
    # non-blocking open for writing fails with ENXIO until then) and files.
    fifos: tuple[str, ...] = ("control", "ok")
    files: tuple[str, ...] = ("status",)
    # Whether the scanner notices a new service directory by itself.
    rescans: bool = True
    # For an implementation in Python: its interpreter, whose bare start-up
    # is the floor under every client call.
    python: Path | None = None
    # Writes the config that lists the services in dirs, all in parent.
    configure: Callable[[Path, list[Path]], None] | None = None
    # A Unix socket in the services' parent that answers once it is ready.
    socket: str | None = None
    _usable: dict[str, bool] = field(default_factory=dict, repr=False)

    @property
    def env(self) -> dict[str, str]:
        return {"PATH": f"{self.bindir}:/usr/bin:/bin"}

    def usable(self, cmd: str) -> bool:
        """Whether cmd exists here and, for a Python console script, the
        module it imports exists too (dtd's commands land one by one)."""
        if cmd not in self._usable:
            path = self.bindir / cmd
            ok = path.is_file()
            if ok:
                head = path.read_bytes()[:2048]
                if head.startswith(b"#!") and b"python" in head.split(b"\n", 1)[0]:
                    ok = _importable(path, head)
            self._usable[cmd] = ok
        return self._usable[cmd]

    def argv(self, template: tuple[str, ...], *dirs: Path) -> list[str]:
        out = [str(self.bindir / template[0])]
        for arg in template[1:]:
            if arg == DIRS:
                out.extend(str(d) for d in dirs)
            elif arg == NAMES:
                out.extend(d.name for d in dirs)
            else:
                out.append(arg.replace(DIR, str(dirs[0])).replace(NAME, dirs[0].name)
                           .replace(CONF, str(dirs[0].parent / CONF_NAME)))
        return out

    @property
    def single(self) -> bool:
        return self.worker is None

    def can(self, *templates: tuple[str, ...] | None) -> bool:
        return all(t is not None and self.usable(t[0]) for t in templates)

    def takes_many(self, template: tuple[str, ...] | None) -> bool:
        return (template is not None and (DIRS in template or NAMES in template)
                and self.usable(template[0]))


def _importable(script: Path, head: bytes) -> bool:
    found = re.search(rb"^from ([\w.]+) import", head, re.M)
    if found is None:
        return True
    interpreter = head.split(b"\n", 1)[0][2:].decode().strip()
    code = ("import importlib.util, sys; "
            f"sys.exit(importlib.util.find_spec({found.group(1).decode()!r}) is None)")
    try:
        # -I: not the checkout in the current directory, which would shadow
        # the installed package.
        return subprocess.run([interpreter, "-I", "-c", code], capture_output=True).returncode == 0
    except OSError:
        return False


def daemontools() -> Impl:
    return Impl("daemontools", SYSTEM, scanner=("svscan", DIR), worker=("supervise", DIR),
                svc_down=("svc", "-d", DIR), svc_up=("svc", "-u", DIR),
                svstat=("svstat", DIRS), svok=("svok", DIR))


def runit() -> Impl:
    # sv without -v sends the command and returns, as svc does; runit has no
    # svok.
    return Impl("runit", SYSTEM, scanner=("runsvdir", DIR), worker=("runsv", DIR),
                svc_down=("sv", "down", DIR), svc_up=("sv", "up", DIR),
                svstat=("sv", "status", DIRS), svok=None)


def s6() -> Impl:
    # s6-svstat takes one directory; s6-svscan picks up a new directory only
    # when told (s6-svscanctl -a), so it has no pickup figure of its own.
    return Impl("s6", SYSTEM, scanner=("s6-svscan", DIR), worker=("s6-supervise", DIR),
                svc_down=("s6-svc", "-d", DIR), svc_up=("s6-svc", "-u", DIR),
                svstat=("s6-svstat", DIR), svok=("s6-svok", DIR), fifos=("control",),
                rescans=False)


CONF_NAME = "supervisord.conf"


def _supervisord_conf(parent: Path, dirs: list[Path]) -> None:
    # startsecs=0: a program counts as started when it is spawned, as with
    # the others, and `supervisorctl start` does not wait a second for it.
    lines = [
        "[supervisord]", f"logfile={parent}/supervisord.log", f"pidfile={parent}/supervisord.pid",
        f"childlogdir={parent}", "nodaemon=true", "loglevel=warn",
        "[unix_http_server]", f"file={parent}/supervisor.sock",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "[supervisorctl]", f"serverurl=unix://{parent}/supervisor.sock",
    ]
    for d in dirs:
        lines += [f"[program:{d.name}]", f"command={d}/run", f"directory={d}",
                  f"autostart={'false' if (d / 'down').exists() else 'true'}",
                  "autorestart=true", "startsecs=0",
                  "stdout_logfile=NONE", "stderr_logfile=NONE"]
    (parent / CONF_NAME).write_text("\n".join(lines) + "\n")


def supervisord() -> Impl:
    # One process for every service, configured by file: no directory to
    # scan, no svok; status of many names in one supervisorctl call.
    ctl = ("supervisorctl", "-c", CONF)
    return Impl("supervisord", SYSTEM, scanner=("supervisord", "-n", "-c", f"{DIR}/{CONF_NAME}"),
                worker=None, svc_down=(*ctl, "stop", NAME), svc_up=(*ctl, "start", NAME),
                svstat=(*ctl, "status", NAMES), svok=None, rescans=False, fifos=(), files=(),
                configure=_supervisord_conf, socket="supervisor.sock")


def dtd(bindir: Path) -> Impl:
    return Impl("dtd", bindir, scanner=("svscan", DIR), worker=("supervise", DIR),
                svc_down=("svc", "-d", DIR), svc_up=("svc", "-u", DIR),
                svstat=("svstat", DIRS), svok=("svok", DIR), python=bindir / "python")


PEERS: tuple[Callable[[], Impl], ...] = (daemontools, runit, s6, supervisord)
ORDER = ("daemontools", "runit", "s6", "supervisord", "dtd")
