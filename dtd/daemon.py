"""dtd: the root daemon (``dtd [--scan DIR] ...``); svscan is its other face.

This module is the command: options, the pidfile, detaching, the transports
(HTTP on a Unix socket, D-Bus), telling systemd it is ready. The supervision
itself is dtd.root.
"""

import errno
import fcntl
import os
import stat
import sys

from dtd import diag

STOP_TIMEOUT = 10.0


class Pidfile:
    """A pidfile that is locked for the daemon's life, not merely present:
    a second dtd finds it locked and refuses to start."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self.fd)
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                diag.fatal("dtd", "unable to lock ", path, ": another dtd is running")
            diag.fatal("dtd", "unable to lock ", path, ": ", diag.reason(e))

    def write(self) -> None:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, b"%d\n" % os.getpid(), 0)

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass


def notify_ready(path: str) -> None:
    """``READY=1`` on systemd's notification socket, for Type=notify."""
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]  # an abstract socket
    import socket  # here: importing it before the first scan delays it 9 ms

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(b"READY=1\nMAINPID=%d\n" % os.getpid(), path)
    except OSError:
        pass


def serve(scandir: str, prog: str, stop_timeout: float = STOP_TIMEOUT,
          adapters: "list[object] | None" = None, init: bool = False,
          log_stdout: bool = False) -> int:
    """Supervise scandir until stopped; the exit code. As PID 1 (a
    container's init, even as svscan) the --init duties come with it."""
    try:
        os.chdir(scandir)
    except OSError as e:
        diag.fatal(prog, "unable to chdir to ", scandir, ": ", diag.reason(e))
    # the forker boots (a fresh interpreter) while the root imports; the
    # first scan starts the services before asyncio is imported (40 ms)
    from dtd.forker import Forker

    forker = Forker()
    # systemd's socket is ours, not the services': taken out of the
    # environment before the forker copies it
    notify_socket = os.environ.pop("NOTIFY_SOCKET", "")
    forker.start()
    from dtd.root import Root

    root = Root(scandir, prog, stop_timeout, forker, init or os.getpid() == 1, log_stdout)
    root.first_scan()
    import asyncio

    root.adapters = list(adapters or [])  # type: ignore[arg-type]
    root.on_ready = lambda: notify_ready(notify_socket)
    return asyncio.run(root.run())


def _default_runtime_dir() -> str:
    if os.getuid() == 0:
        return "/run/dtd"
    return os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/dtd-{os.getuid()}"


def _kept(stream: "object") -> "object | None":
    """A detached daemon keeps its output only when it goes to a file
    (``dtd --daemonize >>/var/log/dtd.log 2>&1``); a terminal or a pipe is
    given up, or the caller would wait on it for ever."""
    try:
        return stream if stat.S_ISREG(os.fstat(stream.fileno()).st_mode) else None  # type: ignore[attr-defined]
    except (OSError, AttributeError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="dtd", description="Supervise every service directory in a scan directory.")
    parser.add_argument("--scan", default="/etc/service", metavar="DIR",
                        help="scan directory (default /etc/service)")
    parser.add_argument("--daemonize", action="store_true",
                        help="detach from the terminal (default: foreground)")
    parser.add_argument("--pidfile", metavar="PATH",
                        help="locked pidfile (default RUNTIME_DIR/dtd.pid with --daemonize)")
    parser.add_argument("--stop-timeout", type=float, default=STOP_TIMEOUT, metavar="S",
                        help="on SIGTERM, how long services get to go down (default 10)")
    parser.add_argument("--socket", metavar="PATH",
                        help="the HTTP API's Unix socket (default RUNTIME_DIR/dtd.sock; none: no socket)")
    parser.add_argument("--socket-mode", type=lambda m: int(m, 8), default=0o666, metavar="OCTAL",
                        help="the socket's mode (default 0666: reading is open, control is checked)")
    parser.add_argument("--socket-group", metavar="GROUP", help="the socket's group")
    parser.add_argument("--bus", choices=("system", "session", "none"),
                        help="the D-Bus to serve on (default: system as root, else session)")
    parser.add_argument("--init", action="store_true",
                        help="a container's init: reap orphans, end every process on stop, "
                        "exit when an essential service stops (implied as PID 1)")
    parser.add_argument("--log-stdout", action="store_true",
                        help="the output of services without a log/ on stdout, as NAME: line")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return diag.EXIT_USAGE if e.code else 0
    if args.daemonize and args.pidfile is None:
        args.pidfile = os.path.join(_default_runtime_dir(), "dtd.pid")
    pidfile = None
    if args.pidfile:
        os.makedirs(os.path.dirname(os.path.abspath(args.pidfile)), exist_ok=True)
        pidfile = Pidfile(args.pidfile)
    scandir = os.path.abspath(args.scan)
    if args.daemonize:
        import daemon  # type: ignore[import-untyped]  # python-daemon

        assert pidfile is not None
        context = daemon.DaemonContext(
            working_directory="/", umask=0o022, detach_process=True,
            files_preserve=[pidfile.fd], stdout=_kept(sys.stdout), stderr=_kept(sys.stderr),
            signal_map={}, prevent_core=False)
        context.open()
    if pidfile:
        pidfile.write()
    # the transports: each is built here from its options and started by
    # the root once the first scan is done
    adapters: list[object] = []
    if args.socket != "none":
        from dtd import api

        path = os.path.abspath(args.socket or os.path.join(_default_runtime_dir(), "dtd.sock"))
        try:
            group = None if args.socket_group is None else api.parse_group(args.socket_group)
            server = api.ApiServer(path, args.socket_mode, group)
            server.bind()
            adapters.append(server)
        except KeyError:
            diag.fatal("dtd", "unknown group ", args.socket_group, code=diag.EXIT_USAGE)
        except api.InUse as e:
            # the default socket is a convenience: a second dtd (another
            # scan directory) still supervises without it
            if args.socket:
                diag.fatal("dtd", "unable to listen on ", str(e), ": another dtd is listening")
            diag.warn("dtd", "another dtd is listening on ", str(e), "; no socket")
        except OSError as e:
            diag.fatal("dtd", "unable to listen on ", path, ": ", diag.reason(e))
    bus = args.bus or ("system" if os.getuid() == 0 else "session")
    if bus != "none":
        from dtd.bus import BusService

        adapters.append(BusService(bus))
    try:
        return serve(scandir, "dtd", args.stop_timeout, adapters, args.init, args.log_stdout)
    finally:
        if pidfile:
            pidfile.remove()


if __name__ == "__main__":
    sys.exit(main())
