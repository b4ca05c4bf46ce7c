"""supervise: start a service and keep it running, as daemontools' supervise(8).

The worker owns DIR/supervise/: it takes the lock, makes the control and ok
FIFOs, writes the status record (and supervise/info, dtd/info.py), starts
./run, restarts it when it exits and obeys the bytes written into
supervise/control. It blocks in poll() and wakes only for its timers: the
one-second rule (or the restart backoff) between two starts, timeout-kill
after a down command, timeout-finish while ./finish runs. Unlike daemontools
it keeps reading commands while a start is held back, so ``svc -d`` right
after a start takes effect at once.

The optional files of the service directory (./finish, down-signal,
notification-fd, ...) are described in dtd/svfiles.py and supervise(8).

The root daemon forks workers and calls ``Worker(...).run()`` in the child;
``supervise DIR`` runs the same worker standalone.
"""

# signal.py (and socket.py) wrap these C functions to turn every number into
# an enum; in a forked worker that touches dozens of shared objects, whose
# pages the kernel then copies (measured with bench/worker_pages.py). Plain
# ints, C calls.
import _signal  # type: ignore[import-not-found]
import _socket
import fcntl
import os
import select
import signal
import sys
import time

from dtd import diag, info, readiness, status, svfiles
from dtd.status import (
    STATE_DOWN,
    STATE_FINISH,
    STATE_RUN,
    WANT_DOWN,
    WANT_ONCE,
    WANT_UP,
    Status,
)

PROG = "supervise"
MIN_INTERVAL = 1.0  # seconds between two starts of ./run, as in daemontools
ADOPT_SLACK = 2.0  # seconds between a status stamp and a process start time

SIGTERM = int(signal.SIGTERM)
SIGCONT = int(signal.SIGCONT)
SIGSTOP = int(signal.SIGSTOP)
SIGKILL = int(signal.SIGKILL)
FINISH_NO_RESTART = 125  # s6: ./finish exiting 125 means "stay down"
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
        self.info = info.Info()
        self.written_info = b""
        self.exiting = False
        self.child = False  # pid is our own child (else adopted: watched by pidfd)
        self.pidfd = -1
        self.last_start = -MIN_INTERVAL
        self.pending = False  # a start is due at self.due()
        self.hold_until = 0.0  # the restart backoff holds starts back until then
        self.has_run = False  # a run ended since this worker began
        self.run_sid = 0  # the session of ./run: who may say it is ready
        self.group = False  # ./run leads its own process group
        self.kill_at = 0.0  # timeout-kill: SIGKILL then, if ./run still runs
        self.finish_pid = 0
        self.finish_kill_at = 0.0
        self.notify_pipe = -1  # read end of the notification-fd pipe
        self.notify_sock: _socket.socket | None = None
        self.poller: select.poll | None = None
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
        self.open_notify_socket()
        if self.adopt():
            self.announce()
            self.publish()
        elif self.st.want == WANT_DOWN:
            self.pidchange()
            self.announce()
            self.publish()
        else:
            # about to start: the start writes the record, once
            self.trystart()
        _fifo(status.OK)
        try:
            self.fdok = os.open(status.OK, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            diag.fatal(PROG, "unable to read ", d, "/supervise/ok: ", diag.reason(e))

    def open_notify_socket(self) -> None:
        """systemd's NOTIFY_SOCKET, offered to every ./run: programs written
        for systemd say READY=1 unchanged. One socket for the worker's life;
        the credentials of each datagram tell whether the current run sent
        it, so what an earlier run left unread is dropped when read (its
        sender is gone, or in another session)."""
        self.env.pop("NOTIFY_SOCKET", None)  # not our own supervisor's
        try:
            self.notify_sock, name = readiness.open_socket()
        except OSError as e:
            diag.warn(PROG, "unable to make NOTIFY_SOCKET for ", self.dir, ": ", diag.reason(e))
            return
        self.env["NOTIFY_SOCKET"] = name

    def adopt(self) -> bool:
        """Take over a ./run that outlived the previous worker.

        A worker killed with SIGKILL leaves its service running. Starting a
        second copy would be wrong, so if the last status names a live
        process that started when the status says it did, watch it through
        a pidfd instead (it is not our child) and keep its record, and what
        the info file said of it (readiness, failures).
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
        try:
            self.run_sid = os.getsid(old.pid)
            self.group = os.getpgid(old.pid) == old.pid
            known = info.read()
        except OSError:
            known = None
        if known is not None:
            known.backoff = 0.0
            known.stopped = False
            self.info = known
        return True

    # -- the status record and the info file ---------------------------------

    def pidchange(self) -> None:
        ns = time.time_ns()
        self.st.seconds, self.st.nanoseconds = divmod(ns, 1_000_000_000)
        if not self.st.pid:
            self.st.term_sent = False
        try:
            status.replace(status.PID, status.PID_NEW, status.pid_text(self.st))
        except OSError as e:
            diag.warn(PROG, "unable to write ", self.dir, "/supervise/pid: ", diag.reason(e))

    def announce(self) -> None:
        st = self.st
        # while ./finish runs the pid stays 0: daemontools' svstat says down,
        # which the service is (runit would show finish's pid as up)
        st.state = STATE_RUN if st.pid else STATE_FINISH if self.finish_pid else STATE_DOWN
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

    def publish(self) -> None:
        """Write supervise/info if anything in it changed. Called after
        announce(), so that a reader woken by info never finds the status
        record behind it (stopped=1 with the service still in finish)."""
        inf = self.info
        inf.stopped = (self.has_run and not self.st.pid and not self.finish_pid
                       and not self.pending and self.st.want != WANT_UP)
        data = info.pack(inf)
        if data == self.written_info:
            return
        try:
            status.replace(info.INFO, info.INFO_NEW, data)
        except OSError as e:
            diag.warn(PROG, "unable to write ", self.dir, "/supervise/info: ", diag.reason(e))
            return
        self.written_info = data

    # -- the service ---------------------------------------------------------

    def due(self) -> float:
        return max(self.last_start + MIN_INTERVAL, self.hold_until)

    def trystart(self) -> None:
        if self.finish_pid:
            self.pending = True  # once ./finish is done
            return
        now = time.monotonic()
        if now < self.due():
            self.pending = True
            return
        self.pending = False
        self.hold_until = 0.0
        self.last_start = now
        self.info.backoff = 0.0
        setsid = not svfiles.exists(svfiles.NOSETSID)
        actions = self.notification_fd()
        try:
            # vfork and exec: no copy of this process's page tables, no
            # copy-on-write faults while the child gets to exec
            pid = os.posix_spawn("./run", ["./run"], self.env, file_actions=actions,
                                 setsid=setsid, setsigdef=_CHILD_DEFAULTS, setsigmask=())
        except OSError as e:
            # daemontools' child says this and exits 111; the start counts
            diag.say(PROG, ": fatal: unable to start ", self.dir, "/run: ", diag.reason(e))
            self.close_notify_pipe()
            self.st.pid = 0
            self.pidchange()
            self.announce()
            self.publish()
            self.pending = self.st.want == WANT_UP and not self.exiting
            return
        finally:
            if actions:
                os.close(actions[0][1])  # the write end is the service's now
        self.child = True
        self.st.pid = pid
        self.st.paused = False
        self.group = setsid
        self.run_sid = pid if setsid else os.getsid(0)
        self.pidchange()
        self.announce()
        self.publish()

    def notification_fd(self) -> list[tuple[int, int, int]] | None:
        """s6's notification-fd: the write end of a fresh pipe becomes that
        descriptor of ./run; the read end is watched until end of file."""
        self.close_notify_pipe()
        try:
            text = svfiles.read(svfiles.NOTIFICATION_FD)
            if text is None:
                return None
            fd = svfiles.parse_fd(text)
        except (OSError, ValueError):
            diag.warn(PROG, "invalid ", self.dir, "/", svfiles.NOTIFICATION_FD, ": ignored")
            return None
        r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        os.set_blocking(w, True)
        if w == fd:
            # dup2 onto itself would keep close-on-exec set
            w2 = os.dup(w)
            os.close(w)
            w = w2
        self.notify_pipe = r
        if self.poller is not None:
            self.poller.register(r, select.POLLIN)
        return [(os.POSIX_SPAWN_DUP2, w, fd)]

    def close_notify_pipe(self) -> None:
        if self.notify_pipe >= 0:
            if self.poller is not None:
                self.poller.unregister(self.notify_pipe)
            os.close(self.notify_pipe)
            self.notify_pipe = -1

    def became_ready(self) -> None:
        if self.st.pid and not self.info.ready:
            self.info.ready = True
            self.info.ready_since = time.time()
            self.publish()

    def read_notify_pipe(self) -> None:
        newline, eof = readiness.read_pipe(self.notify_pipe)
        if newline:
            self.became_ready()
        if eof:
            self.close_notify_pipe()

    def read_notify_socket(self) -> None:
        assert self.notify_sock is not None
        while True:
            got = readiness.receive(self.notify_sock)
            if got is None:
                return
            data, sender = got
            if not self.st.pid or sender <= 0:
                continue
            if sender != self.st.pid:
                # systemd-notify and friends are children of the service:
                # they are in its session (./run leads one)
                try:
                    if os.getsid(sender) != self.run_sid:
                        continue
                except OSError:
                    continue
            ready, text = readiness.parse(data)
            if text is not None:
                self.info.status_text = text
            if ready:
                self.became_ready()
            elif text is not None:
                self.publish()

    def exited(self, wstatus: int | None) -> None:
        """./run ended: wstatus from waitpid, None for an adopted process."""
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        now = time.monotonic()
        inf = self.info
        if wstatus is None:
            code, sig = -1, 0  # not our child: how it ended is unknown
            inf.exit_code, inf.exit_signal = None, 0
        elif os.WIFSIGNALED(wstatus):
            code, sig = -1, os.WTERMSIG(wstatus)
            inf.exit_code, inf.exit_signal = code, sig
        else:
            code, sig = os.WEXITSTATUS(wstatus), 0
            inf.exit_code, inf.exit_signal = code, sig
        self.has_run = True
        self.kill_at = 0.0
        self.close_notify_pipe()
        inf.ready, inf.ready_since, inf.status_text = False, 0.0, ""
        if self.st.want == WANT_UP and not self.exiting:
            self.count_failure(code != 0, now - self.last_start, now)
        self.st.pid = 0
        self.pidchange()
        self.start_finish(code, sig)
        self.announce()
        self.publish()
        if not self.finish_pid:
            self.restart()

    def count_failure(self, bad_exit: bool, ran: float, now: float) -> None:
        """A run fails when it exits nonzero or by a signal, or lasts less
        than restart-backoff's MAX (one second without the file). With the
        file, the next start waits MIN, doubled per consecutive failure,
        at most MAX."""
        try:
            text = svfiles.read(svfiles.RESTART_BACKOFF)
            limits = svfiles.parse_backoff(text) if text is not None else None
        except (OSError, ValueError):
            diag.warn(PROG, "invalid ", self.dir, "/", svfiles.RESTART_BACKOFF, ": ignored")
            limits = None
        short = limits[1] if limits else MIN_INTERVAL
        inf = self.info
        if not (bad_exit or ran < short):
            inf.fails = 0
            return
        inf.fails += 1
        if limits is None:
            return
        low, high = limits
        delay = min(high, low * 2 ** min(inf.fails - 1, 62))
        self.hold_until = now + delay
        inf.backoff = delay if self.hold_until > self.last_start + MIN_INTERVAL else 0.0

    def start_finish(self, code: int, sig: int) -> None:
        if not svfiles.exists(svfiles.FINISH):
            return
        try:
            text = svfiles.read(svfiles.TIMEOUT_FINISH)
            limit = svfiles.parse_millis(text) if text is not None \
                else svfiles.TIMEOUT_FINISH_DEFAULT
        except (OSError, ValueError):
            diag.warn(PROG, "invalid ", self.dir, "/", svfiles.TIMEOUT_FINISH, ": ignored")
            limit = svfiles.TIMEOUT_FINISH_DEFAULT
        try:
            self.finish_pid = os.posix_spawn(
                "./finish", ["./finish", str(code), str(sig)], self.env,
                setsid=not svfiles.exists(svfiles.NOSETSID),
                setsigdef=_CHILD_DEFAULTS, setsigmask=())
        except OSError as e:
            diag.warn(PROG, "unable to start ", self.dir, "/finish: ", diag.reason(e))
            return
        self.finish_kill_at = time.monotonic() + limit / 1000 if limit else 0.0

    def finished(self, wstatus: int) -> None:
        """./finish ended."""
        self.finish_pid = 0
        self.finish_kill_at = 0.0
        if os.WIFEXITED(wstatus) and os.WEXITSTATUS(wstatus) == FINISH_NO_RESTART:
            self.st.want = WANT_DOWN
            self.pending = False
            self.hold_until = 0.0
            self.info.backoff = 0.0
        self.announce()
        self.publish()
        self.restart()

    def restart(self) -> None:
        if self.exiting:
            self.pending = False
        elif self.st.want == WANT_UP or self.pending:
            self.trystart()
        self.publish()

    def kill(self, sig: int, group: bool = False) -> None:
        pid = self.st.pid
        if pid:
            try:
                if group and self.group and svfiles.exists(svfiles.KILL_GROUP):
                    os.killpg(pid, sig)
                else:
                    os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def down_signal(self) -> int:
        try:
            text = svfiles.read(svfiles.DOWN_SIGNAL)
            return svfiles.parse_signal(text) if text is not None else SIGTERM
        except (OSError, ValueError):
            diag.warn(PROG, "invalid ", self.dir, "/", svfiles.DOWN_SIGNAL, ": SIGTERM sent")
            return SIGTERM

    def arm_timeout_kill(self) -> None:
        if self.kill_at or not self.st.pid:
            return
        try:
            text = svfiles.read(svfiles.TIMEOUT_KILL)
            limit = svfiles.parse_millis(text) if text is not None else 0
        except (OSError, ValueError):
            diag.warn(PROG, "invalid ", self.dir, "/", svfiles.TIMEOUT_KILL, ": ignored")
            limit = 0
        if limit:
            self.kill_at = time.monotonic() + limit / 1000

    def command(self, c: int) -> None:
        st = self.st
        if c == ord("d"):
            st.want = WANT_DOWN
            self.pending = False
            self.hold_until = 0.0
            self.info.backoff = 0.0
            if st.pid:
                self.kill(self.down_signal(), group=True)
                self.kill(SIGCONT, group=True)
                st.paused = False
                st.term_sent = True
                self.arm_timeout_kill()
            self.announce()
            self.publish()
        elif c == ord("u"):
            st.want = WANT_UP
            # an operator's start does not wait out the backoff
            self.hold_until = 0.0
            self.info.backoff = 0.0
            self.announce()
            if not st.pid:
                self.trystart()
            self.publish()
        elif c == ord("o"):
            st.want = WANT_ONCE
            self.pending = False
            self.hold_until = 0.0
            self.info.backoff = 0.0
            self.announce()
            if not st.pid:
                self.trystart()
            self.publish()
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
            if st.want == WANT_DOWN:
                self.arm_timeout_kill()
            self.announce()
            self.publish()
        elif c == ord("k"):
            self.kill(SIGKILL, group=True)
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
                pid, wstatus = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.child and pid == self.st.pid:
                self.exited(wstatus)
            elif pid == self.finish_pid:
                self.finished(wstatus)

    def timeout(self) -> int | None:
        """Milliseconds to the next timer, None when none is set."""
        deadlines = []
        if self.pending and not self.finish_pid:
            deadlines.append(self.due())
        if self.kill_at:
            deadlines.append(self.kill_at)
        if self.finish_kill_at:
            deadlines.append(self.finish_kill_at)
        if not deadlines:
            return None
        return max(0, int((min(deadlines) - time.monotonic()) * 1000) + 1)

    def timers(self) -> None:
        now = time.monotonic()
        if self.kill_at and now >= self.kill_at:
            self.kill_at = 0.0
            self.kill(SIGKILL, group=True)
        if self.finish_kill_at and now >= self.finish_kill_at:
            self.finish_kill_at = 0.0
            try:
                os.kill(self.finish_pid, SIGKILL)
            except ProcessLookupError:
                pass
        if self.pending and not self.finish_pid and now >= self.due():
            if not self.st.pid and not self.exiting and self.st.want != WANT_DOWN:
                self.trystart()
            else:
                self.pending = False
                self.publish()

    def run(self) -> int:
        for sig in _WORKER_DEFAULTS:
            _signal.signal(sig, _SIG_DFL)
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        _signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        # a handler, not SIG_DFL: only a handled signal writes the wakeup fd
        _signal.signal(_signal.SIGCHLD, _ignore)
        self.setup()
        poller = self.poller = select.poll()
        poller.register(wake_r, select.POLLIN)
        poller.register(self.fdcontrol, select.POLLIN)
        if self.notify_pipe >= 0:
            poller.register(self.notify_pipe, select.POLLIN)
        sockfd = -1
        if self.notify_sock is not None:
            sockfd = self.notify_sock.fileno()
            poller.register(sockfd, select.POLLIN)
        watched = -1
        while True:
            if self.exiting and not self.st.pid and not self.finish_pid:
                self.announce()
                return 0
            if self.pidfd != watched:
                if watched >= 0:
                    poller.unregister(watched)
                if self.pidfd >= 0:
                    poller.register(self.pidfd, select.POLLIN)
                watched = self.pidfd
            # the idle path tests three attributes and calls nothing: every
            # function a worker runs dirties the page its code object is on
            timers = self.pending or self.kill_at or self.finish_kill_at
            ready = poller.poll(self.timeout() if timers else None)
            gone = False
            for fd, _ in ready:
                if fd == wake_r:
                    try:
                        while os.read(wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                elif fd == sockfd:
                    self.read_notify_socket()
                elif fd == self.notify_pipe:
                    self.read_notify_pipe()
                elif fd == watched >= 0:
                    gone = True
            self.reap()
            if gone and watched == self.pidfd:
                self.exited(None)
            self.read_commands()
            if self.pending or self.kill_at or self.finish_kill_at:
                self.timers()

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
