"""Exit codes and daemontools' diagnostics, byte for byte.

Every program dies the same way: ``prog: fatal: unable to X: reason``, with
djb's own wording for system errors (``file does not exist``, not libc's
``No such file or directory``), exit 100 for usage, 111 for everything else.
"""

import errno
import os

# typing costs about 2 ms at start-up, which the clients (svc, svstat, svok)
# cannot afford; mypy treats any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

EXIT_USAGE = 100
EXIT_TEMP = 111

# djb's error_str.c, in its order; where two names share a number on Linux
# (EAGAIN/EWOULDBLOCK) the first one wins, as it does there.
_TABLE = (
    ("EINTR", "interrupted system call"),
    ("ENOMEM", "out of memory"),
    ("ENOENT", "file does not exist"),
    ("ETXTBSY", "text busy"),
    ("EIO", "input/output error"),
    ("EEXIST", "file already exists"),
    ("ETIMEDOUT", "timed out"),
    ("EINPROGRESS", "operation in progress"),
    ("EAGAIN", "temporary failure"),
    ("EWOULDBLOCK", "input/output would block"),
    ("EPIPE", "broken pipe"),
    ("EPERM", "permission denied"),
    ("EACCES", "access denied"),
    ("ENXIO", "device not configured"),
    ("EPROTO", "protocol error"),
    ("EISDIR", "is a directory"),
    ("ECONNREFUSED", "connection refused"),
    ("ENOTDIR", "not a directory"),
    ("ESRCH", "no such process"),
    ("E2BIG", "argument list too long"),
    ("ENOEXEC", "exec format error"),
    ("EBADF", "file descriptor not open"),
    ("ECHILD", "no child processes"),
    ("EDEADLK", "operation would cause deadlock"),
    ("EFAULT", "bad address"),
    ("ENOTBLK", "not a block device"),
    ("EBUSY", "device busy"),
    ("EXDEV", "cross-device link"),
    ("ENODEV", "device does not support operation"),
    ("EINVAL", "invalid argument"),
    ("ENFILE", "system cannot open more files"),
    ("EMFILE", "process cannot open more files"),
    ("ENOTTY", "not a tty"),
    ("EFBIG", "file too big"),
    ("ENOSPC", "out of disk space"),
    ("ESPIPE", "unseekable descriptor"),
    ("EROFS", "read-only file system"),
    ("EMLINK", "too many links"),
    ("EDOM", "input out of range"),
    ("ERANGE", "output out of range"),
    ("EALREADY", "operation already in progress"),
    ("ENOTSOCK", "not a socket"),
    ("EDESTADDRREQ", "destination address required"),
    ("EMSGSIZE", "message too long"),
    ("EPROTOTYPE", "incorrect protocol type"),
    ("ENOPROTOOPT", "protocol not available"),
    ("EPROTONOSUPPORT", "protocol not supported"),
    ("ESOCKTNOSUPPORT", "socket type not supported"),
    ("EOPNOTSUPP", "operation not supported"),
    ("EPFNOSUPPORT", "protocol family not supported"),
    ("EAFNOSUPPORT", "address family not supported"),
    ("EADDRINUSE", "address already used"),
    ("EADDRNOTAVAIL", "address not available"),
    ("ENETDOWN", "network down"),
    ("ENETUNREACH", "network unreachable"),
    ("ENETRESET", "network reset"),
    ("ECONNABORTED", "connection aborted"),
    ("ECONNRESET", "connection reset"),
    ("ENOBUFS", "out of buffer space"),
    ("EISCONN", "already connected"),
    ("ENOTCONN", "not connected"),
    ("ESHUTDOWN", "socket shut down"),
    ("ETOOMANYREFS", "too many references"),
    ("ELOOP", "symbolic link loop"),
    ("ENAMETOOLONG", "file name too long"),
    ("EHOSTDOWN", "host down"),
    ("EHOSTUNREACH", "host unreachable"),
    ("ENOTEMPTY", "directory not empty"),
    ("EUSERS", "too many users"),
    ("EDQUOT", "disk quota exceeded"),
    ("ESTALE", "stale NFS file handle"),
    ("ENOLCK", "no locks available"),
    ("ENOSYS", "system call not available"),
    ("ENOSTR", "not a stream device"),
    ("ETIME", "timer expired"),
    ("ENOSR", "out of stream resources"),
    ("ENOMSG", "no message of desired type"),
    ("EBADMSG", "bad message type"),
    ("EIDRM", "identifier removed"),
    ("ENONET", "machine not on network"),
    ("ENOLINK", "link severed"),
    ("EADV", "advertise error"),
    ("ESRMNT", "srmount error"),
    ("ECOMM", "communication error"),
    ("EMULTIHOP", "multihop attempted"),
    ("EREMCHG", "remote address changed"),
)

_WORDS: dict[int, str] = {0: "no error"}
for _name, _text in _TABLE:
    _num = getattr(errno, _name, None)
    if _num is not None:
        _WORDS.setdefault(_num, _text)


def error_str(err: int | None) -> str:
    """djb's wording for an errno value."""
    return _WORDS.get(err or 0, "unknown error")


def reason(exc: OSError) -> str:
    return error_str(exc.errno)


def _bytes(part: str | bytes) -> bytes:
    return part if isinstance(part, bytes) else os.fsencode(part)


def say(*parts: str | bytes) -> None:
    """Write one line to stderr in a single write, as strerr does.

    Names come from the command line or the file system and may hold any
    byte, so they are written back exactly as they came.
    """
    data = b"".join(_bytes(p) for p in parts) + b"\n"
    while data:
        try:
            n = os.write(2, data)
        except InterruptedError:
            continue
        except OSError:
            return
        data = data[n:]


def warn(prog: str, *parts: str | bytes) -> None:
    say(prog, ": warning: ", *parts)


def fatal(prog: str, *parts: str | bytes, code: int = EXIT_TEMP) -> "NoReturn":
    say(prog, ": fatal: ", *parts)
    raise SystemExit(code)


def usage(prog: str, text: str) -> "NoReturn":
    """``prog: usage: text``, exit 100."""
    say(prog, ": usage: ", text)
    raise SystemExit(EXIT_USAGE)
