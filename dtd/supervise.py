"""supervise: start a service and keep it running, as daemontools' supervise(8).

The worker owns DIR/supervise/: it takes the lock, makes the control and ok
FIFOs, writes the status record, starts ./run, restarts it when it exits and
obeys the bytes written into supervise/control. It blocks in poll() with no
timeout while nothing happens; the only timer is the one-second rule between
two starts, and unlike daemontools it keeps reading commands during that
second, so ``svc -d`` right after a start takes effect at once.

The root daemon forks workers and calls ``Worker(...).run()`` in the child;
``supervise DIR`` runs the same worker standalone.
"""

import fcntl
import os
import select
import signal
import sys
import time

# signal.py wraps these C functions to turn every number into an enum; in a
# forked worker that touches dozens of shared objects, whose pages the kernel
# then copies (measured with bench/worker_pages.py). Plain ints, C calls.
import _signal  # type: ignore[import-not-found]

from dtd import diag, status
from dtd.status import STATE_DOWN, STATE_RUN, WANT_DOWN, WANT_ONCE, WANT_UP, Status

PROG = "supervise"
MIN_INTERVAL = 1.0  # seconds between two starts of ./run, as in daemontools
ADOPT_SLACK = 2.0  # seconds between a status stamp and a process start time

SIGTERM = int(signal.SIGTERM)
SIGCONT = int(signal.SIGCONT)
SIGSTOP = int(signal.SIGSTOP)
SIGNALS = {
    ord("a"): int(signal.SIGALRM),
    ord("h"): int(signal.SIGHUP),
    ord("i"): int(signal.SIGINT),
    ord("k"): int(signal.SIGKILL),
    ord("t"): SIGTERM,
    ord("q"): int(signal.SIGQUIT),
    ord("1"): int(signal.SIGUSR1),
    ord("2"): int(signal.SIGUSR2),
}

# Python ignores these at start-up and exec() keeps an ignored disposition;
# a service must get the defaults that supervise's children get.
_CHILD_DEFAULTS = tuple(int(s) for s in (
    signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGINT, signal.SIGTERM,
    signal.SIGHUP, signal.SIGQUIT, signal.SIGALRM))
# a worker dies of these, as daemontools' supervise does, whatever the
# process it was forked from had made of them
_WORKER_DEFAULTS = tuple(int(s) for s in (
    signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
    signal.SIGUSR2, signal.SIGALRM))
_SIG_DFL = int(signal.SIG_DFL)


def _ignore(signum: int, frame: object) -> None:
    pass


def _fifo(path: str) -> None:
    try:
        os.mkfifo(path, 0o600)
    except FileExistsError:
        pass


def _process_start(pid: int) -> float | None:
    """Unix time at which pid started, or None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")


class Worker:
    def __init__(self, directory: str) -> None:
        self.dir = directory
        self.st = Status()
        self.exiting = False
        self.child = False  # pid is our own child (else adopted: watched by pidfd)
        self.pidfd = -1
        self.last_start = -MIN_INTERVAL
        self.pending = False  # a start is due at last_start + MIN_INTERVAL
        self.env = dict(os.environ)  # converted once, not at every start

    # -- set-up, in supervise.c's order, with its messages ------------------

    def setup(self) -> None:
        d = self.dir
        try:
            os.chdir(d)
        except OSError as e:
            diag.fatal(PROG, "unable to chdir to ", d, ": ", diag.reason(e))
        try:
            os.stat(status.DOWN)
            self.st.want = WANT_DOWN
        except FileNotFoundError:
            self.st.want = WANT_UP
        except OSError as e:
            diag.fatal(PROG, "unable to stat ", d, "/down: ", diag.reason(e))
        try:
            os.mkdir(status.DIR, 0o700)
        except OSError:
            pass
        try:
            self.fdlock = os.open(status.LOCK, os.O_WRONLY | os.O_NONBLOCK | os.O_APPEND
                                  | os.O_CREAT | os.O_CLOEXEC, 0o600)
            # exclusive, non-blocking: djb's lock_exnb
            fcntl.flock(self.fdlock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            diag.fatal(PROG, "unable to acquire ", d, "/supervise/lock: ", diag.reason(e))
        _fifo(status.CONTROL)
        try:
            self.fdcontrol = os.open(status.CONTROL, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            diag.fatal(PROG, "unable to read ", d, "/supervise/control: ", diag.reason(e))
        try:
            # held open so that the control FIFO never reads end-of-file
            self.fdcontrolwrite = os.open(status.CONTROL, os.O_WRONLY | os.O_NONBLOCK
                                          | os.O_CLOEXEC)
        except OSError as e:
            diag.fatal(PROG, "unable to write ", d, "/supervise/control: ", diag.reason(e))
        if self.adopt():
            self.announce()
        elif self.st.want == WANT_DOWN:
            self.pidchange()
            self.announce()
        else:
            # about to start: the start writes the record, once
            self.trystart()
        _fifo(status.OK)
        try:
            self.fdok = os.open(status.OK, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            diag.fatal(PROG, "unable to read ", d, "/supervise/ok: ", diag.reason(e))

    def adopt(self) -> bool:
        """Take over a ./run that outlived the previous worker.

        A worker killed with SIGKILL leaves its service running. Starting a
        second copy would be wrong, so if the last status names a live
        process that started when the status says it did, watch it through
        a pidfd instead (it is not our child) and keep its record.
        """
        try:
            old = status.read()
        except OSError:
            return False
        if old is None or not old.pid or old.pid == os.getpid():
            return False
        started = _process_start(old.pid)
        if started is None or abs(started - old.since) > ADOPT_SLACK:
            return False
        try:
            self.pidfd = os.pidfd_open(old.pid)
        except OSError:
            return False
        old.want = old.want if old.want in (WANT_UP, WANT_DOWN, WANT_ONCE) else WANT_UP
        old.state = STATE_RUN
        self.st = old
        self.child = False
        self.last_start = time.monotonic()
        return True

    # -- the status record ---------------------------------------------------

    def pidchange(self) -> None:
        ns = time.time_ns()
        self.st.seconds, self.st.nanoseconds = divmod(ns, 1_000_000_000)
        self.st.state = STATE_RUN if self.st.pid else STATE_DOWN
        if not self.st.pid:
            self.st.term_sent = False
        try:
            status.replace(status.PID, status.PID_NEW, status.pid_text(self.st))
        except OSError as e:
            diag.warn(PROG, "unable to write ", self.dir, "/supervise/pid: ", diag.reason(e))

    def announce(self) -> None:
        st = self.st
        record = Status(st.seconds, st.nanoseconds, st.pid, st.paused and bool(st.pid),
                        st.want, st.term_sent, st.state)
        try:
            status.replace(status.STATUS, status.STATUS_NEW, status.pack(record))
        except OSError as e:
            diag.warn(PROG, "unable to write ", self.dir, "/supervise/status.new: ",
                      diag.reason(e))
        try:
            status.replace(status.STAT, status.STAT_NEW, status.stat_text(record))
        except OSError as e:
            diag.warn(PROG, "unable to write ", self.dir, "/supervise/stat: ", diag.reason(e))

    # -- the service ---------------------------------------------------------

    def trystart(self) -> None:
        now = time.monotonic()
        if now < self.last_start + MIN_INTERVAL:
            self.pending = True
            return
        self.pending = False
        self.last_start = now
        try:
            # vfork and exec: no copy of this process's page tables, no
            # copy-on-write faults while the child gets to exec
            pid = os.posix_spawn("./run", ["./run"], self.env,
                                 setsigdef=_CHILD_DEFAULTS, setsigmask=())
        except OSError as e:
            # daemontools' child says this and exits 111; the start counts
            diag.say(PROG, ": fatal: unable to start ", self.dir, "/run: ", diag.reason(e))
            self.st.pid = 0
            self.pidchange()
            self.announce()
            self.pending = self.st.want == WANT_UP and not self.exiting
            return
        self.child = True
        self.st.pid = pid
        self.st.paused = False
        self.pidchange()
        self.announce()

    def exited(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        self.st.pid = 0
        self.pidchange()
        self.announce()
        if not self.exiting and self.st.want == WANT_UP:
            self.trystart()

    def kill(self, sig: int) -> None:
        if self.st.pid:
            try:
                os.kill(self.st.pid, sig)
            except ProcessLookupError:
                pass

    def command(self, c: int) -> None:
        st = self.st
        if c == ord("d"):
            st.want = WANT_DOWN
            self.pending = False
            if st.pid:
                self.kill(SIGTERM)
                self.kill(SIGCONT)
                st.paused = False
                st.term_sent = True
            self.announce()
        elif c == ord("u"):
            st.want = WANT_UP
            self.announce()
            if not st.pid:
                self.trystart()
        elif c == ord("o"):
            st.want = WANT_ONCE
            self.pending = False
            self.announce()
            if not st.pid:
                self.trystart()
        elif c == ord("p"):
            st.paused = True
            self.announce()
            self.kill(SIGSTOP)
        elif c == ord("c"):
            st.paused = False
            self.announce()
            self.kill(SIGCONT)
        elif c == ord("x"):
            self.exiting = True
            self.pending = False
            self.announce()
        elif c in SIGNALS:
            self.kill(SIGNALS[c])
            if c == ord("t") and st.pid and not st.term_sent:
                st.term_sent = True
                self.announce()
        # anything else is ignored, as daemontools does

    # -- the loop --------------------------------------------------------------

    def reap(self) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.child and pid == self.st.pid:
                self.exited()

    def run(self) -> int:
        for sig in _WORKER_DEFAULTS:
            _signal.signal(sig, _SIG_DFL)
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        _signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        # a handler, not SIG_DFL: only a handled signal writes the wakeup fd
        _signal.signal(_signal.SIGCHLD, _ignore)
        self.setup()
        poller = select.poll()
        poller.register(wake_r, select.POLLIN)
        poller.register(self.fdcontrol, select.POLLIN)
        watched = -1
        while True:
            if self.exiting and not self.st.pid:
                self.announce()
                return 0
            if self.pidfd != watched:
                if watched >= 0:
                    poller.unregister(watched)
                if self.pidfd >= 0:
                    poller.register(self.pidfd, select.POLLIN)
                watched = self.pidfd
            timeout = None
            if self.pending:
                timeout = max(0, int((self.last_start + MIN_INTERVAL - time.monotonic()) * 1000) + 1)
            ready = poller.poll(timeout)
            for fd, _ in ready:
                if fd == wake_r:
                    try:
                        while os.read(wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
            self.reap()
            if watched >= 0 and any(fd == watched for fd, _ in ready):
                self.exited()
            self.read_commands()
            if self.pending and time.monotonic() >= self.last_start + MIN_INTERVAL:
                if not self.st.pid and not self.exiting and self.st.want != WANT_DOWN:
                    self.trystart()
                else:
                    self.pending = False

    def read_commands(self) -> None:
        while True:
            try:
                data = os.read(self.fdcontrol, 256)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            if not data:
                return
            for c in data:
                self.command(c)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        diag.say("supervise: usage: supervise dir")
        return diag.EXIT_USAGE
    from dtd.proctitle import set_title
    set_title("supervise " + args[0], PROG)
    try:
        return Worker(args[0]).run()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else diag.EXIT_TEMP


if __name__ == "__main__":
    sys.exit(main())
