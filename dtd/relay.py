"""--log-stdout: the lines of services without a logger on dtd's standard
output, each as ``NAME: line``, for container logs.

Each such service writes into a pipe of its own; the root holds both ends,
the service's worker keeps the read end (so the pipe has a reader, and
survives, while no root runs), and the relay copies whole lines out.

A line is taken out of its pipe only once it has been written out: the
relay looks at what the pipe holds with tee(2), which copies pipe buffers
into a scratch pipe without consuming them, writes the complete lines, then
reads exactly those bytes away. A root killed at any moment leaves every
line it has not written in the pipe, for the next root; at worst the lines
of the last write are written twice. An unfinished line stays in the pipe
until its newline comes, so lines of two services never mix; it is written
as it is, with a newline added, when its service's ./run exits. A line that
fills the whole pipe is written in pieces with no other service's output in
between, unless its writer pauses for SPLIT_AFTER seconds in the middle or
the line passes MAX_LINE bytes (binary output with no newline at all must
not silence every other service).

The pipes are watched edge-triggered in an epoll set of the relay's own
(its descriptor goes into the root's loop): a pipe holding an unfinished
line stays readable, and level-triggered readiness would spin on it.

Where tee(2) is refused (a seccomp filter), the relay reads the pipe into
memory instead: the same output, but what a killed root had read is lost.
"""

import errno
import os
import select
from typing import Callable

from dtd.peek import Peek, Refused, consume

SCRATCH = 1 << 20  # the scratch pipe's size: as much as a service pipe can hold
SPLIT_AFTER = 1.0  # seconds a long line may hold the output with its writer idle
MAX_LINE = 1 << 20  # a line is split after this many bytes, so that others get a turn



def label(name: str) -> bytes:
    """The prefix of a service's lines: its name, with no line break in it."""
    return os.fsencode(name).replace(b"\n", b"\\n") + b": "


class Stream:
    """One service's pipe, as the relay sees it."""

    __slots__ = ("prefix", "r", "w", "midline", "moved", "held", "length")

    def __init__(self, prefix: bytes, r: int, w: int) -> None:
        self.prefix = prefix
        self.r = r  # the read end, non-blocking
        self.w = w  # the write end, only asked whether the pipe is full
        self.midline = False  # the output ends in an unfinished line of ours
        self.moved = 0  # bytes taken out so far: a paused long line is one that did not move
        self.held = b""  # without tee: read from the pipe and not written out yet
        self.length = 0  # of the unfinished line written so far


class Relay:
    def __init__(self, out: int = 1,
                 later: Callable[[float, Callable[[], None]], object] | None = None) -> None:
        self.out = out
        self.later = later  # the root's timers; None: long lines are never split
        self.epoll = select.epoll()
        self.streams: dict[int, Stream] = {}  # by read end
        self.ready: dict[int, Stream] = {}  # signalled and not drained yet, in order
        self.holder: Stream | None = None  # its long line is being written out
        # a lower pipe-max-size than SCRATCH: long lines come in more pieces
        self.scratch = Peek(SCRATCH)
        self.scratch_size = self.scratch.size
        self.tee = True  # False once tee(2) is refused (a seccomp filter)
        self.max_line = MAX_LINE

    def fileno(self) -> int:
        return self.epoll.fileno()

    def add(self, name: str, r: int, w: int) -> Stream:
        """Relay the pipe (r, w); both ends stay the caller's to close."""
        os.set_blocking(r, False)
        stream = Stream(label(name), r, w)
        self.streams[r] = stream
        # registered with data already there, the first event comes at once
        self.epoll.register(r, select.EPOLLIN | select.EPOLLET)
        return stream

    def rename(self, stream: Stream, name: str) -> None:
        stream.prefix = label(name)

    def remove(self, stream: Stream) -> None:
        """Write out everything the pipe holds and stop watching it."""
        self.flush(stream)
        self.streams.pop(stream.r, None)
        self.ready.pop(stream.r, None)
        try:
            self.epoll.unregister(stream.r)
        except OSError:
            pass

    def on_events(self) -> None:
        for fd, _ in self.epoll.poll(0):
            stream = self.streams.get(fd)
            if stream is not None:
                self.ready[fd] = stream
        self.pump()

    def pump(self) -> None:
        while self.ready:
            if self.holder is not None:
                # the long line first; the others wait for its end
                if self.ready.pop(self.holder.r, None) is None:
                    return
                self.drain(self.holder)
            else:
                self.drain(self.ready.pop(next(iter(self.ready))))

    def flush(self, stream: Stream) -> None:
        """Its ./run has exited: what it wrote, down to an unfinished last
        line (given its newline), goes out now."""
        if self.holder is not None and self.holder is not stream:
            self.end_line(self.holder)
        self.drain(stream)
        while data := self.peek(stream):
            self.write(stream, data)
            self.consume(stream, len(data))
        if stream.midline:
            self.end_line(stream)
        self.pump()

    # -- one pipe ---------------------------------------------------------------

    def drain(self, stream: Stream) -> None:
        """Write out the complete lines the pipe holds (or the pieces of a
        line too long for it) and take them out of it."""
        while True:
            if self.holder is not None and self.holder is not stream:
                self.ready[stream.r] = stream  # its turn comes after the long line
                return
            data = self.peek(stream)
            if not data:
                break
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                if len(data) < self.scratch_size and not self.full(stream):
                    break  # an unfinished line: it waits in the pipe for the rest
                cut = len(data)  # a line longer than the pipe: out in pieces
            self.write(stream, data[:cut])
            self.consume(stream, cut)
            if stream.midline and stream.length >= self.max_line:
                self.end_line(stream)
                self.ready[stream.r] = stream  # the rest after the others
                return
        if stream.midline:
            if self.holder is not stream:
                self.holder = stream
            if self.later is not None:
                moved = stream.moved
                self.later(SPLIT_AFTER, lambda: self.split(stream, moved))
        elif self.holder is stream:
            self.holder = None

    def split(self, stream: Stream, moved: int) -> None:
        """A long line whose writer paused: the others go first."""
        if self.holder is stream and stream.moved == moved and stream.r in self.streams:
            self.end_line(stream)
            self.pump()

    def end_line(self, stream: Stream) -> None:
        self.write_out(b"\n")
        stream.midline = False
        stream.length = 0
        if self.holder is stream:
            self.holder = None

    def peek(self, stream: Stream) -> bytes:
        """What the pipe holds, left in it (as much as the scratch pipe takes)."""
        if self.tee:
            try:
                return self.scratch.peek(stream.r)
            except (BlockingIOError, InterruptedError):
                return b""  # empty: nothing to say
            except Refused:
                self.tee = False
        # without tee: read into memory, which a killed root loses
        room = self.scratch_size - len(stream.held)
        if room > 0:
            try:
                stream.held += os.read(stream.r, room)
            except BlockingIOError:
                pass
        return stream.held

    def consume(self, stream: Stream, n: int) -> None:
        stream.moved += n
        if stream.held:
            stream.held = stream.held[n:]
            return
        consume(stream.r, n)

    def full(self, stream: Stream) -> bool:
        """True when a writer would block: the pipe's buffers are all taken."""
        p = select.poll()
        p.register(stream.w, select.POLLOUT)
        return not p.poll(0)

    # -- the output -------------------------------------------------------------

    def write(self, stream: Stream, data: bytes) -> None:
        """data, lines of stream (the last one perhaps unfinished), prefixed."""
        lines = data.split(b"\n")
        last = lines.pop()
        out = []
        for i, line in enumerate(lines):
            if i > 0 or not stream.midline:
                out.append(stream.prefix)
            out.append(line)
            out.append(b"\n")
        if last:
            if lines or not stream.midline:
                out.append(stream.prefix)
            out.append(last)
        stream.midline = bool(last) or (stream.midline and not lines)
        stream.length = len(last) if lines else stream.length + len(last)
        self.write_out(b"".join(out))

    def write_out(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.out, view):]
            except InterruptedError:
                continue
            except BlockingIOError:
                # someone made our output non-blocking: wait for room
                select.select([], [self.out], [])
            except OSError as e:
                if e.errno not in (errno.EPIPE, errno.EBADF, errno.EIO, errno.ENOSPC):
                    raise
                return  # nobody reads our output: the lines are dropped

    def close(self) -> None:
        self.epoll.close()
        self.scratch.close()
