"""A chaos service's ./run: numbered lines on stdout, and a ledger of what it
wrote.

Run as ``python3 -IS writer.py ID LEDGER INTERVAL`` from the service
directory (standard library only: it runs under Debian's interpreter, which
starts faster than the virtualenv's). Each line is ``ID INC SEQ PAD``, where
INC names this process (pid and start time in clock ticks, so that a reused
pid is another incarnation). After every write into the pipe returned whole
(the line must then arrive), SEQ is recorded in LEDGER/ID/INC, so that a line
lost at the tail of an incarnation is seen as surely as one in the middle.

A write that finds no reader at all (EPIPE) is appended to LEDGER/epipe.

The process holds an exclusive non-blocking flock on ``run.lock`` in its
directory for its life; when another copy holds it, that is a moment with
two copies of ./run: it appends to LEDGER/violations and exits.
"""

import fcntl
import os
import signal
import sys
import time

PAD = b"x" * 40


def incarnation() -> str:
    with open("/proc/self/stat", "rb") as f:
        start = f.read().rsplit(b")", 1)[1].split()[19]
    return "%d.%d" % (os.getpid(), int(start))


def main() -> int:
    # a service dies of SIGINT (svc -i) without a word, as a C program does;
    # SIGPIPE stays ignored, so that a write with no reader is seen (EPIPE)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sid, ledger, interval = sys.argv[1], sys.argv[2], float(sys.argv[3])
    inc = incarnation()
    lock = os.open("run.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fd = os.open(os.path.join(ledger, "violations"),
                     os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, b"%s %s %.6f\n" % (sid.encode(), inc.encode(), time.time()))
        return 1
    record = os.open(os.path.join(ledger, sid, inc), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.pwrite(record, b"%012d\n" % 0, 0)
    head = b"%s %s " % (sid.encode(), inc.encode())
    seq = 0
    while True:
        seq += 1
        line = head + b"%d " % seq + PAD + b"\n"
        # a pipe write of less than PIPE_BUF bytes is whole or not at all
        try:
            if os.write(1, line) != len(line):
                return 111
        except BrokenPipeError:
            # nobody holds the pipe's read end: a service in C would die of
            # SIGPIPE here (Python ignores it); noted, and ended the same way
            fd = os.open(os.path.join(ledger, "epipe"), os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                         0o644)
            os.write(fd, b"%s %s %d %.6f\n" % (sid.encode(), inc.encode(), seq, time.time()))
            return 111
        os.pwrite(record, b"%012d\n" % seq, 0)
        time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main())
