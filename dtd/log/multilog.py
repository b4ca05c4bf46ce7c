"""multilog: read lines on stdin, stamp, select and append them to rotated logs.

Byte for byte Debian's multilog 0.76 (see multilog(8)), in three ways that
give the same bytes:

* whole reads, for scripts of ``t``, ``s``, ``n``, ``!`` and directories
  only: one stamp per read (the reference stamps each line as it reads
  it; here the lines of one read share the stamp taken when it arrived),
  one ``bytes.replace`` to stamp every line, one ``writev`` per directory;
* whole buffers of lines, for scripts that also select (``+``/``-``):
  each pattern runs once over the buffer (multilog_select);
* a line at a time, for scripts with ``e`` or ``=``, still written a
  stretch at a time.

Where a directory comes within reach of its size, the 1024-byte segments
that might get there are replayed as the reference buffers them (1024-byte
reads, a 512-byte output buffer per directory, LogDir.c_write), because
where its rotation cuts a file depends on that buffering.
"""

import errno
import os
import re
import select
import signal
import sys

from dtd.log import multilog_select
from dtd.log.multilog_dir import LATE, O_APPEND, LogDir, Stale, die, pause, stamp
from dtd.log.multilog_script import ALERT_LIMIT, MATCH_LIMIT, STATUS_LEN, Script, parse
from dtd.peek import Peek, Refused, consume

READ_SIZE = 256 * 1024  # a multiple of REF_READ, so file reads stay aligned with the reference's
REF_READ = 1024  # the reference's input buffer
STRETCHES = (64 * REF_READ, 8 * REF_READ, REF_READ)  # what per_line_read tries, largest first


class Multilog:
    def __init__(self, script: Script, logs: list[LogDir]) -> None:
        self.script = script
        self.logs = logs
        self.t = script.timestamp
        self.per_line = script.per_line
        # a pattern runs once over a whole buffer; not with two alerts, whose
        # lines the reference interleaves
        self.select_whole = sum(a.kind == "e" for a in script.actions) <= 1
        self.line_regexes = [multilog_select.line_regex(a.arg) if a.kind in ("+", "-") else None
                             for a in script.actions]
        too_long = MATCH_LIMIT - (len(stamp()) + 1 if self.t else 0)
        self.too_long = too_long
        # after a newline: a bare [^\n]{N} would rescan every line from each
        # of its bytes
        self.too_long_re = re.compile(b"\n[^\n]{%d}" % (too_long + 1))
        self.pending = bytearray()  # the line being read: stamp and up to 1000 bytes
        self.overflow = False  # its first 1000 bytes are written, the rest follows as read
        self.newline = True  # the last read ended with a newline
        self.exitasap = False
        self.forcerotate = False
        # stdin is read by peeking (dtd/peek.py) where it is a pipe: a line
        # leaves the pipe only once it is in every log directory, so a
        # multilog killed with SIGKILL (paused on a full disk, say) leaves
        # its lines to the next one instead of losing them
        self.peek: Peek | None = None
        try:
            self.peek = Peek(READ_SIZE)
        except OSError:
            pass

    # ---- signals ----------------------------------------------------

    def on_term(self, signum: int, frame: object) -> None:
        self.exitasap = True

    def on_alrm(self, signum: int, frame: object) -> None:
        self.forcerotate = True

    # ---- the input loop ---------------------------------------------

    def run(self) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # a signal must end a blocked wait for input: PEP 475 would restart
        # a plain read, so wait in poll() on stdin and the wakeup pipe
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self.on_term)
        signal.signal(signal.SIGALRM, self.on_alrm)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGALRM})
        poller = select.poll()
        poller.register(0, select.POLLIN)
        poller.register(wake_r, select.POLLIN)
        try:
            while True:
                for log in self.logs:
                    log.flush()
                if self.forcerotate:
                    self.forcerotate = False
                    for log in self.logs:
                        if log.bytes > 0:
                            log.fullcurrent()
                size = READ_SIZE
                if self.exitasap:
                    if self.newline:
                        break
                    # finish the line and leave the rest of stdin unread
                    size = 1
                events = dict(poller.poll())
                if wake_r in events:
                    Stale.value = errno.EINTR  # the reference's read was interrupted
                    try:
                        os.read(wake_r, 512)
                    except BlockingIOError:
                        pass
                    if 0 not in events or self.exitasap or self.forcerotate:
                        continue
                try:
                    data = self.read(size)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""  # the reference takes a read error for the end
                if not data:
                    break
                self.newline = data[-1] == 10
                if self.per_line:
                    self.per_line_read(data, self.stamp())
                else:
                    self.fast(data)
                if self.peek is not None:
                    for log in self.logs:
                        log.flush()
                    consume(0, len(data))
            self.end_of_input()
        finally:
            # from here on, as in the reference's c_quit, TERM and ALRM wait;
            # they must not meet the default handlers that Python's exit restores
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGALRM})
            signal.set_wakeup_fd(-1)
            os.close(wake_r)
            os.close(wake_w)

    def read(self, size: int) -> bytes:
        if self.peek is not None:
            try:
                return self.peek.peek(0, size)
            except Refused:
                self.peek.close()  # no pipe: plain reads from now on
                self.peek = None
        return os.read(0, size)

    def stamp(self) -> bytes:
        return stamp() + b" " if self.t else b""

    def end_of_input(self) -> None:
        if self.overflow:
            for log in self.logs:
                if log.selected:
                    log.putc(b"\n")
            self.overflow = False
        elif self.pending:
            self.line_done(True)
        for log in self.logs:
            log.quit()

    # ---- whole reads ------------------------------------------------

    def fast(self, data: bytes) -> None:
        """Whole pieces of data at once while no directory comes near its
        size; the 1024-byte segments where one does, line at a time."""
        if not self.logs:
            return
        st = self.stamp()
        pos, n = 0, len(data)
        while pos < n:
            if pos:
                # pos is a segment boundary, where the reference has flushed
                for log in self.logs:
                    log.flush()
            chunk = data[pos:] if pos else data
            room = min(log.size - LATE - log.bytes for log in self.logs)
            if self.write_whole(chunk, st, room):
                return
            if room > 0:
                total = len(chunk) + (len(st) * (chunk.count(b"\n") + 1))
                k = (room * len(chunk) // total) // REF_READ * REF_READ - REF_READ
                if k > 0 and self.write_whole(chunk[:k], st, room):
                    pos += k
                    continue
            self.segment(data[pos:pos + REF_READ], st)
            pos += REF_READ

    def write_whole(self, data: bytes, st: bytes, room: int) -> bool:
        """Write what data makes to every directory if it fits in room."""
        saved = (bytes(self.pending), self.overflow)
        parts = self.transform(data, st)
        if sum(len(p) for p in parts) < room:
            for log in self.logs:
                log.writev(parts)
            return True
        self.pending[:] = saved[0]
        self.overflow = saved[1]
        return False

    def transform(self, data: bytes, st: bytes) -> list[bytes | memoryview]:
        """What the reference writes for data, every line selected."""
        view = memoryview(data)
        parts: list[bytes | memoryview] = []
        n = len(data)
        i = 0
        if self.overflow or self.pending:
            k = data.find(b"\n")
            if k < 0:
                if self.overflow:
                    return [view]
                self.pending += data
                if len(self.pending) >= MATCH_LIMIT:
                    parts.append(bytes(self.pending))
                    self.pending.clear()
                    self.overflow = True
                return parts
            if self.pending:
                parts.append(bytes(self.pending))
                self.pending.clear()
            parts.append(view[:k + 1])
            self.overflow = False
            i = k + 1
        j = data.rfind(b"\n", i)
        if j >= 0:
            if st:
                stamped = data.replace(b"\n", b"\n" + st)
                before = 1 if i else 0  # newlines in data[:i]
                parts.append(st)
                parts.append(memoryview(stamped)[i + before * len(st):
                                                 len(stamped) - (n - j - 1) - len(st)])
            else:
                parts.append(view[i:j + 1])
            i = j + 1
        if i < n:
            line = st + data[i:]
            if len(line) >= MATCH_LIMIT:
                parts.append(line)
                self.overflow = True
            else:
                self.pending += line
        return parts

    # ---- line at a time ---------------------------------------------

    def per_line_read(self, data: bytes, st: bytes) -> None:
        """Each line looked at alone, but each directory's lines written in
        one piece per stretch of input that cannot bring any directory near
        its size (even were every line selected); the segments that might,
        replayed as the reference buffers them."""
        n, pos = len(data), 0
        while pos < n:
            if pos:
                for log in self.logs:  # a segment boundary: the reference flushed
                    log.flush()
            room = min((log.size - LATE - log.bytes for log in self.logs), default=n * 28)
            for step in STRETCHES:
                piece = data[pos:pos + step] if pos or step < n else data
                bound = len(piece) + len(st) * (piece.count(b"\n") + 1) + len(self.pending)
                if bound < room:
                    outs = (self.gather_selected(piece, st) if self.select_whole
                            else self.gather(piece, st))
                    for log, out in zip(self.logs, outs):
                        log.writev([b"".join(out)])
                    pos += len(piece)
                    break
            else:
                self.segment(data[pos:pos + REF_READ], st)
                pos += REF_READ

    def gather_selected(self, data: bytes, st: bytes) -> list[list[bytes | memoryview]]:
        """gather() for scripts that only select: the whole lines in the
        middle of data go through multilog_select, a buffer at a time."""
        outs: list[list[bytes | memoryview]] = [[] for _ in self.logs]
        head = 0
        if self.pending or self.overflow:
            head = data.find(b"\n") + 1
            if not head:
                head = len(data)
            for out, part in zip(outs, self.gather(data[:head], st)):
                out += part
        last = data.rfind(b"\n", head) + 1
        if last > head:
            body = data[head:last]
            if body.find(b"\n") > self.too_long or self.too_long_re.search(body):
                for out, part in zip(outs, self.gather(body, st)):
                    out += part
            else:
                buf = (b"\n" + st + body.replace(b"\n", b"\n" + st))[:len(body) + 1 + len(st)
                                                                  * body.count(b"\n")]
                self.select_buffer(buf, outs)
        if max(head, last) < len(data):
            for out, part in zip(outs, self.gather(data[max(head, last):], st)):
                out += part
        return outs

    def select_buffer(self, buf: bytes, outs: list[list[bytes | memoryview]]) -> None:
        sels = multilog_select.select(self.script.actions, self.line_regexes, buf)
        taps = [a for a in self.script.actions if a.kind in multilog_select.TAPS]
        outs_left = iter(outs)
        for a, sel in zip(taps, sels):
            if a.kind == "d":
                next(outs_left).extend(multilog_select.pieces(sel, buf))
            elif a.kind == "e":
                alert = memoryview(multilog_select.alerts(sel, buf))
                try:
                    while alert:
                        alert = alert[os.write(2, alert):]
                except OSError:
                    pass
            else:
                line = multilog_select.last_line(sel, buf)
                if line is not None:
                    self.status(a.fd, a.arg, line)

    def gather(self, data: bytes, st: bytes) -> list[list[bytes | memoryview]]:
        """What each directory gets of data, with the script run per line."""
        outs: list[list[bytes | memoryview]] = [[] for _ in self.logs]
        logs = list(zip(self.logs, outs))
        n, i = len(data), 0
        if self.overflow:
            k = data.find(b"\n")
            i = n if k < 0 else k + 1
            for log, out in logs:
                if log.selected:
                    out.append(data[:i])
            if k < 0:
                return outs
            self.overflow = False
        while i < n:
            k = data.find(b"\n", i)
            text = data[i:k] if k >= 0 else data[i:]
            if self.pending:
                line = bytes(self.pending) + text
                self.pending.clear()
            else:
                line = st + text
            if k < 0 and len(line) < MATCH_LIMIT:
                self.pending += line
                break
            self.select(line[:MATCH_LIMIT] if len(line) > MATCH_LIMIT else line)
            if k >= 0:
                line += b"\n"
            for log, out in logs:
                if log.selected:
                    out.append(line)
            if k < 0:
                self.overflow = True
                break
            i = k + 1
        return outs

    def exact(self, data: bytes, st: bytes) -> None:
        for pos in range(0, len(data), REF_READ):
            if pos:
                for log in self.logs:
                    log.flush()
            self.segment(data[pos:pos + REF_READ], st)

    def segment(self, seg: bytes, st: bytes) -> None:
        i, n = 0, len(seg)
        pending = self.pending
        while i < n:
            if self.overflow:
                k = seg.find(b"\n", i)
                end = n if k < 0 else k + 1
                for log in self.logs:
                    if log.selected:
                        log.putc(seg[i:end])
                if k >= 0:
                    self.overflow = False
                i = end
                continue
            if not pending:
                pending += st
            room = MATCH_LIMIT - len(pending)
            k = seg.find(b"\n", i, i + room)
            if k >= 0:
                pending += seg[i:k]
                i = k + 1
                self.line_done(True)
            else:
                pending += seg[i:i + room]
                i = min(n, i + room)
                if len(pending) >= MATCH_LIMIT:
                    self.line_done(False)

    def line_done(self, newline: bool) -> None:
        line = bytes(self.pending)
        self.pending.clear()
        self.select(line)
        for log in self.logs:
            if log.selected:
                log.put(line)
                if newline:
                    log.putc(b"\n")
        if not newline:
            self.overflow = True

    def select(self, line: bytes) -> None:
        """Run the script on a line (its first 1000 bytes): choose the
        directories, print the alert, write the status files."""
        selected = True
        for a in self.script.actions:
            kind = a.kind
            if kind == "d":
                assert a.log is not None
                a.log.selected = selected
            elif kind == "-":
                if selected and a.regex is not None and a.regex.fullmatch(line):
                    selected = False
            elif kind == "+":
                if not selected and a.regex is not None and a.regex.fullmatch(line):
                    selected = True
            elif not selected:
                pass
            elif kind == "e":
                alert = line[:ALERT_LIMIT] + b"...\n" if len(line) > ALERT_LIMIT else line + b"\n"
                try:
                    os.write(2, alert)
                except OSError:
                    pass
            elif kind == "=":
                self.status(a.fd, a.arg, line)

    @staticmethod
    def status(fd: int, name: bytes, line: bytes) -> None:
        record = line + b"\n" * (STATUS_LEN - len(line))
        while True:
            while True:
                try:
                    os.lseek(fd, 0, os.SEEK_SET)
                    break
                except OSError as e:
                    pause("unable to move to beginning of ", name, ", pausing: ", err=e.errno)
            try:
                if os.write(fd, record) == STATUS_LEN:
                    return
                err: int | None = 0
            except OSError as e:
                err = e.errno
            pause("unable to write ", name, ", pausing: ", err=err)


def main(argv: list[str] | None = None) -> int:
    args = [os.fsencode(a) for a in (sys.argv[1:] if argv is None else argv)]
    os.umask(0o022)
    # the reference dies of these; Python would ignore PIPE and XFSZ and
    # turn INT into a traceback
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.close(os.open(".", os.O_RDONLY | os.O_NONBLOCK))
    except OSError as e:
        die("unable to switch to current directory: ", err=e.errno)
    # TERM and ALRM wait until the script is set up, as the reference
    # blocks them until its first read
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGALRM})
    script, dirs = parse(args)
    for a in script.actions:
        if a.kind == "=":
            try:
                os.close(os.open(a.arg, O_APPEND, 0o600))
            except OSError as e:
                die("unable to create ", a.arg, ": ", err=e.errno)
            try:
                a.fd = os.open(a.arg, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as e:
                die("unable to write ", a.arg, ": ", err=e.errno)
    logs = []
    d_actions = iter(a for a in script.actions if a.kind == "d")
    for name, size, num, processor in dirs:
        log = LogDir(name, size, num, processor)
        log.restart()
        next(d_actions).log = log
        logs.append(log)
    Multilog(script, logs).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
