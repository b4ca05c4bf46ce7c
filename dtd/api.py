"""The HTTP/JSON API on a Unix socket: a thin adapter over the root's model.

HTTP/1.1 parsed by h11, one asyncio loop for every client, the convention of
Docker's and Podman's sockets (``curl --unix-socket PATH http://dtd/...``):

    GET  /v1/services               every service, a JSON list
    GET  /v1/services/NAME          one service; a logger's name has a slash,
                                    sent percent-encoded (web%2Flog) or as is
    POST /v1/services/NAME/control  body {"commands": "du"}, svc's letters
    GET  /v1/events                 newline-delimited JSON, one object per
                                    change, chunked, until the client leaves
    GET  /metrics                   Prometheus text format 0.0.4

Errors are JSON objects ``{"error": "..."}`` with a status that says what
was wrong: 400 bad request, JSON or commands; 403 a peer that may not
control; 404 no such service or path; 405 a method the path does not take;
408 a client that stopped half way through a request; 413 a body over
``max_body``; 431 headers over ``max_header``; 503 (with Retry-After: 1)
when no supervise runs for the service, a temporary state since the root
starts a new worker within a second. A client that sends nothing for
``idle_timeout`` seconds is dropped.

Who may control comes from the kernel (SO_PEERCRED): root and the daemon's
own uid; anyone who can connect may read.

This module makes the socket, at once, so that the command can refuse to
start; the HTTP side (dtd.api_http, with asyncio and h11) is imported when
the adapter starts, after the first services are on their way.
"""

import errno
import grp
import os
import socket
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dtd.api_http import HttpServer, Root

IDLE_TIMEOUT = 5.0
MAX_HEADER = 16384
MAX_BODY = 4096
# each client is a descriptor of the root, which also needs them for pipes
# and pidfds: a flood of connections must not starve supervision
MAX_CLIENTS = 1024


class InUse(Exception):
    """Another dtd is listening on the socket."""


def listen(path: str, mode: int = 0o666, group: int | None = None) -> socket.socket:
    """A listening socket at path; a stale socket file (nobody accepts on
    it) is replaced, a live one is not."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # nobody listens: left by a dtd that was killed
        else:
            raise InUse(path)
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, mode)
        if group is not None:
            os.chown(path, -1, group)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def parse_group(text: str) -> int:
    """A group name or number, for --socket-group."""
    if text.isdigit():
        return int(text)
    return grp.getgrnam(text).gr_gid


class ApiServer:
    """The adapter: ``start(root)`` serves the socket, ``stop()`` ends it.

    The limits are attributes, to be lowered before start() (tests do)."""

    def __init__(self, path: str, mode: int = 0o666, group: int | None = None) -> None:
        self.path = path
        self.mode = mode
        self.group = group
        self.idle_timeout = IDLE_TIMEOUT
        self.max_header = MAX_HEADER
        self.max_body = MAX_BODY
        self.max_clients = MAX_CLIENTS
        self.sock: socket.socket | None = None
        self.http: "HttpServer | None" = None

    def bind(self) -> None:
        """Listen now (before the root starts), so that a refusal is seen
        by the command; raises InUse or OSError."""
        if self.sock is None:
            self.sock = listen(self.path, self.mode, self.group)

    async def start(self, root: "Root") -> None:
        from dtd.api_http import HttpServer

        self.bind()
        assert self.sock is not None
        self.http = HttpServer(self, root, self.sock)
        await self.http.start()

    async def stop(self) -> None:
        if self.sock is not None:
            try:
                # only the file that is still ours
                if os.stat(self.path).st_ino == os.fstat(self.sock.fileno()).st_ino:
                    os.unlink(self.path)
            except OSError:
                pass
        if self.http is not None:
            await self.http.stop()
