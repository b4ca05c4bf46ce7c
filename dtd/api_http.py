"""The HTTP side of the socket API (dtd.api): h11 over asyncio streams.

Imported when the adapter starts, once the first services run: asyncio
and h11 are not worth delaying them for.
"""

import asyncio
import errno
import http
import json
import os
import socket
import struct
from typing import Protocol
from urllib.parse import unquote_to_bytes

import h11

import dtd
from dtd import diag
from dtd.model import ADDED, CHANGED, REMOVED, Model, Service

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dtd.api import ApiServer

CONTROL_LETTERS = "udopchaitkx"  # svc's options
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        b"Content-Length: 29\r\nConnection: close\r\n\r\n{\"error\":\"too many clients\"}\n")
# a subscriber that lets this much pile up unread is dropped, so that one
# stuck reader cannot make the root grow without bound
MAX_BACKLOG = 4 << 20
_CRED = struct.Struct("3i")
SERVER = [("Server", "dtd/" + dtd.__version__)]

KINDS = {ADDED: "added", CHANGED: "changed", REMOVED: "removed"}


class Root(Protocol):
    """What the adapter uses of dtd.root.Root."""

    model: Model

    def send(self, name: str, commands: bytes) -> None: ...

    def warn(self, *parts: str) -> None: ...


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _label(value: str) -> str:
    # the exposition format escapes exactly these three in label values
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


METRICS = (
    ("dtd_service_up", "gauge", "Whether the service's ./run is running (1) or not (0).",
     lambda s: 1 if s.state == "up" else 0),
    ("dtd_service_desired_up", "gauge", "Whether the service is wanted up (1) or not (0).",
     lambda s: 1 if s.want == "up" else 0),
    ("dtd_service_normally_up", "gauge", "Whether the service has no down file (1) or has one (0).",
     lambda s: 1 if s.normally_up else 0),
    ("dtd_service_paused", "gauge", "Whether the service is paused (1) or not (0).",
     lambda s: 1 if s.paused else 0),
    ("dtd_service_state_change_timestamp_seconds", "gauge",
     "Unix time of the service's last pid change.", lambda s: s.since),
    ("dtd_service_starts_total", "counter",
     "Starts of ./run seen since the root began watching.", lambda s: s.starts),
    ("dtd_service_ready", "gauge",
     "Whether the service said it is ready since it started (1) or not (0).",
     lambda s: 1 if s.ready else 0),
    ("dtd_service_ready_timestamp_seconds", "gauge",
     "Unix time the service said it is ready, 0 when it is not.", lambda s: s.ready_since),
    ("dtd_service_fails", "gauge",
     "Consecutive failed runs of ./run, as the restart backoff counts them.", lambda s: s.fails),
    ("dtd_service_backoff_seconds", "gauge",
     "The delay before the next start the backoff holds back, 0 when none.",
     lambda s: s.backoff),
)


def metrics(services: list[Service]) -> bytes:
    """The Prometheus text format, version 0.0.4."""
    out: list[str] = []
    labels = [_label(s.name) for s in services]
    for name, kind, text, value in METRICS:
        out.append(f"# HELP {name} {text}\n# TYPE {name} {kind}\n")
        out.extend(f'{name}{{service="{lab}"}} {value(s)!r}\n' for s, lab in zip(services, labels))
    out.append("# HELP dtd_services Services by state.\n# TYPE dtd_services gauge\n")
    for state in ("up", "down", "finish"):
        out.append(f'dtd_services{{state="{state}"}} {sum(s.state == state for s in services)}\n')
    out.append("# HELP dtd_build_info The version of dtd, as a label.\n# TYPE dtd_build_info gauge\n")
    out.append(f'dtd_build_info{{version="{_label(dtd.__version__)}"}} 1\n')
    # a name that is not UTF-8 on disk comes as surrogates: shown escaped
    return "".join(out).encode("utf-8", "backslashreplace")


class HttpServer:
    """The clients of one listening socket, in the root's loop."""

    def __init__(self, limits: "ApiServer", root: Root, sock: socket.socket) -> None:
        self.limits = limits
        self.root = root
        self.sock = sock
        self.owner = os.getuid()
        self.server: asyncio.AbstractServer | None = None
        self.subscribers: set[asyncio.StreamWriter] = set()
        self.handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.root.model.listen(self.on_event)
        self.server = await asyncio.start_unix_server(self.client, sock=self.sock)

    async def stop(self) -> None:
        self.root.model.unlisten(self.on_event)
        if self.server is not None:
            self.server.close()
        for w in list(self.subscribers):
            w.close()
        for task in list(self.handlers):
            task.cancel()
        if self.server is not None:
            await self.server.wait_closed()

    # -- events: one encoding per change, written to every subscriber ---------

    def on_event(self, kind: str, svc: Service) -> None:
        if not self.subscribers:
            return
        line = _json({"event": KINDS.get(kind, kind), "service": svc.as_dict()})
        # chunked framing by hand: h11 would do the same per subscriber
        chunk = b"%x\r\n%s\r\n" % (len(line), line)
        for w in list(self.subscribers):
            if w.transport.get_write_buffer_size() > MAX_BACKLOG:
                self.subscribers.discard(w)
                w.transport.abort()
            else:
                w.write(chunk)

    # -- one client -----------------------------------------------------------

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self.handlers) >= self.limits.max_clients:
            writer.write(BUSY)
            writer.close()
            return
        self.handlers.add(task)
        try:
            await self.converse(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.handlers.discard(task)
            self.subscribers.discard(writer)
            writer.transport.abort()

    def peer_uid(self, writer: asyncio.StreamWriter) -> int:
        sock = writer.get_extra_info("socket")
        try:
            _, uid, _ = _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
        except (OSError, AttributeError):
            return -1
        return int(uid)

    async def converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header)
        uid = self.peer_uid(writer)
        while True:
            request: h11.Request | None = None
            body = bytearray()
            try:
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        try:
                            data = await asyncio.wait_for(reader.read(65536), self.limits.idle_timeout)
                        except TimeoutError:
                            if conn.their_state is h11.IDLE and not conn.trailing_data[0]:
                                return  # nothing begun: just hang up
                            raise HTTPError(408, "request timed out")
                        conn.receive_data(data)
                    elif isinstance(event, h11.Request):
                        request = event
                        # h11 limits only a head that is still incomplete;
                        # one that came whole in a single read is counted here
                        size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
                        if size > self.limits.max_header:
                            raise HTTPError(431, f"request head over {self.limits.max_header} bytes")
                        length = _content_length(event)
                        if length is not None and length > self.limits.max_body:
                            raise HTTPError(413, f"body over {self.limits.max_body} bytes")
                    elif isinstance(event, h11.Data):
                        body += event.data
                        if len(body) > self.limits.max_body:
                            raise HTTPError(413, f"body over {self.limits.max_body} bytes")
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    else:  # ConnectionClosed, or PAUSED by a client that hung up
                        return
                assert request is not None
                try:
                    stream = await self.dispatch(conn, writer, request, bytes(body), uid)
                except HTTPError as e:
                    # the request was read whole: the connection stays usable
                    stream = False
                    await self.respond(conn, writer, e.status, _json({"error": e.message}),
                                       headers=e.headers)
            except h11.RemoteProtocolError as e:
                await self.fail(conn, writer, HTTPError(e.error_status_hint, f"bad request: {e}"))
                return
            except (h11.LocalProtocolError, ValueError, TypeError, LookupError) as e:
                # a bug of ours: said once, and the root goes on serving
                self.root.warn("api: ", type(e).__name__, ": ", str(e))
                await self.fail(conn, writer, HTTPError(500, "internal error"))
                return
            except HTTPError as e:
                await self.fail(conn, writer, e)
                return
            if stream:
                await self.follow(conn, reader, writer)
                return
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def respond(self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int,
                      body: bytes, ctype: str = "application/json",
                      headers: list[tuple[str, str]] | None = None) -> None:
        head = SERVER + [("Content-Type", ctype), ("Content-Length", str(len(body)))] + (headers or [])
        writer.write(conn.send(h11.Response(status_code=status, headers=head,
                                               reason=http.HTTPStatus(status).phrase)))
        if body:
            writer.write(conn.send(h11.Data(data=body)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()

    async def fail(self, conn: h11.Connection, writer: asyncio.StreamWriter, e: HTTPError) -> None:
        """An error answer, then the connection is closed: after a bad
        request the rest of the stream cannot be trusted."""
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        headers = e.headers + [("Connection", "close")]
        try:
            await self.respond(conn, writer, e.status, _json({"error": e.message}), headers=headers)
        except (h11.LocalProtocolError, ConnectionError):
            pass

    async def follow(self, conn: h11.Connection, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        """An event stream, until the client goes away."""
        while await reader.read(65536):
            pass  # a subscriber has nothing more to say; anything is ignored

    # -- routing: translation to the model and root.send, nothing more ------

    async def dispatch(self, conn: h11.Connection, writer: asyncio.StreamWriter,
                       req: h11.Request, body: bytes, uid: int) -> bool:
        """Answer one request; True if it became an event stream."""
        root = self.root
        method = req.method.decode("ascii", "replace")
        target = req.target.split(b"?", 1)[0]
        if target == b"/v1/services":
            _allow(method, "GET")
            data = _json([s.as_dict() for s in root.model.all()])
            await self.respond(conn, writer, 200, data)
        elif target.startswith(b"/v1/services/"):
            rest = target[len(b"/v1/services/"):]
            if rest.endswith(b"/control"):
                _allow(method, "POST")
                name = _name(rest[:-len(b"/control")])
                if uid not in (0, self.owner):
                    raise HTTPError(403, "not allowed to control services")
                commands = _commands(body)
                if root.model.get(name) is None:
                    raise HTTPError(404, f"no such service: {name}")
                try:
                    root.send(name, commands.encode())
                except KeyError:
                    raise HTTPError(404, f"no such service: {name}")
                except OSError as e:
                    if e.errno == errno.ENXIO:
                        raise HTTPError(503, "supervise not running", [("Retry-After", "1")])
                    raise HTTPError(500, f"unable to control {name}: {diag.reason(e)}")
                await self.respond(conn, writer, 202, _json({"service": name, "commands": commands}))
            else:
                _allow(method, "GET")
                name = _name(rest)
                svc = root.model.get(name)
                if svc is None:
                    raise HTTPError(404, f"no such service: {name}")
                await self.respond(conn, writer, 200, _json(svc.as_dict()))
        elif target == b"/v1/events":
            _allow(method, "GET")
            # subscribed before the headers go out: a client that has read
            # them and then looks at the state misses no change after it
            head = SERVER + [("Content-Type", "application/x-ndjson"),
                             ("Cache-Control", "no-cache")]
            if req.http_version == b"1.0":
                raise HTTPError(400, "events need HTTP/1.1 (chunked)")
            writer.write(conn.send(h11.Response(status_code=200, reason="OK", headers=head + [
                ("Transfer-Encoding", "chunked")])))
            self.subscribers.add(writer)
            await writer.drain()
            return True
        elif target == b"/metrics":
            _allow(method, "GET")
            await self.respond(conn, writer, 200, metrics(root.model.all()),
                               "text/plain; version=0.0.4; charset=utf-8")
        else:
            raise HTTPError(404, "no such path")
        return False


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise HTTPError(405, f"method {method} not allowed here", [("Allow", allowed)])


def _content_length(req: h11.Request) -> int | None:
    for k, v in req.headers:
        if k == b"content-length":
            return int(v)
    return None


def _name(raw: bytes) -> str:
    """A service name from its URL segment: percent-decoded, then as the
    model names it (names that are not UTF-8 on disk are surrogates)."""
    name = unquote_to_bytes(raw).decode("utf-8", "surrogateescape")
    if not name or "\0" in name:
        raise HTTPError(404, "no such service: " + json.dumps(name)[1:-1])
    return name


def _commands(body: bytes) -> str:
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise HTTPError(400, f"bad JSON: {e}")
    if not isinstance(obj, dict) or set(obj) != {"commands"}:
        raise HTTPError(400, 'the body must be {"commands": "LETTERS"}')
    commands = obj["commands"]
    if not isinstance(commands, str) or not commands:
        raise HTTPError(400, "commands must be a string of svc's letters (udopchaitkx)")
    bad = sorted(set(commands) - set(CONTROL_LETTERS))
    if bad:
        raise HTTPError(400, "unknown commands: " + json.dumps("".join(bad))
                        + "; svc's letters are udopchaitkx")
    return commands
