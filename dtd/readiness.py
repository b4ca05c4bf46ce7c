"""Readiness: s6's notification-fd pipe and systemd's NOTIFY_SOCKET.

The worker offers both to every ./run. A newline on the notification-fd
pipe, or a ``READY=1`` datagram on the socket, means the service is ready;
``STATUS=text`` on the socket is its status line.

The socket is made with ``_socket``: the ``socket`` module's class wraps
every call in Python and turns numbers into enums, pages a forked worker
would dirty for nothing (bench/worker_pages.py).
"""

import _socket
import os

# struct ucred: pid, uid, gid
_UCRED = 12
# room for the credentials only: a sender's SCM_RIGHTS (systemd-notify sends
# a barrier pipe after READY=1) does not fit, and the kernel closes
# descriptors that do not fit instead of installing them in the worker; the
# sender sees its barrier answered
_ANCILLARY = _socket.CMSG_SPACE(_UCRED)
MAX_DATAGRAM = 4096


def open_socket() -> tuple[_socket.socket, str]:
    """A non-blocking datagram socket that receives its senders'
    credentials, and its name as NOTIFY_SOCKET gives it (``@`` = abstract).

    The kernel picks the name (autobind: five hex digits in the abstract
    namespace, unique while the socket lives): no path length limit for a
    deep service directory, nothing to clean up, and no stat or formatting
    in each worker, which would cost it pages. Raises OSError.
    """
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC
                          | _socket.SOCK_NONBLOCK)
    try:
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_PASSCRED, 1)
        sock.bind("")
        name = sock.getsockname()
    except OSError:
        sock.close()
        raise
    return sock, "@" + (name[1:].decode("ascii") if isinstance(name, bytes) else name[1:])


def receive(sock: _socket.socket) -> tuple[bytes, int] | None:
    """One datagram and the pid its sender claims (0 if none came with it);
    None when there is nothing left to read."""
    try:
        data, ancillary, _, _ = sock.recvmsg(MAX_DATAGRAM, _ANCILLARY,
                                             _socket.MSG_CMSG_CLOEXEC)
    except (BlockingIOError, InterruptedError):
        return None
    pid = 0
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_CREDENTIALS \
                and len(payload) >= _UCRED:
            pid = int.from_bytes(payload[:4], "little", signed=True)
    return data, pid


def parse(data: bytes) -> tuple[bool, str | None]:
    """sd_notify's newline-separated assignments: (READY=1 seen, the last
    STATUS= text or None). Other assignments (MAINPID=, WATCHDOG=1,
    BARRIER=1...) are not ours to act on and are ignored."""
    ready = False
    text: str | None = None
    for line in data.split(b"\n"):
        if line == b"READY=1":
            ready = True
        elif line.startswith(b"STATUS="):
            text = line[7:].decode("utf-8", "replace")
    return ready, text


def read_pipe(fd: int) -> tuple[bool, bool]:
    """Drain the notification-fd pipe: (a newline was read, end of file)."""
    newline = False
    while True:
        try:
            data = os.read(fd, 512)
        except BlockingIOError:
            return newline, False
        except InterruptedError:
            continue
        if not data:
            return newline, True
        newline = newline or b"\n" in data
