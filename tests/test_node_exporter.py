# ruff: noqa: F811 (the daemon fixture imported from test_api is an argument here)
"""node_exporter (Debian's prometheus-node-exporter, a real one) reading
dtd: its runit collector over a scan directory that dtd supervises, side
by side with one that runit's runsv supervises, and its textfile collector
over what ``dtdctl metrics -o`` writes.

The runit collector reads supervise/status as runit writes it (20 bytes,
the state in byte 19) and its ok FIFO; it still exists in node_exporter
1.5.0, disabled by default (``--collector.runit``)."""

import re
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from conftest import Procs, have_ref, make_service, ours, ref, wait_for
from test_api import Daemon, daemon, up_pid  # noqa: F401  (daemon is a fixture)

from dtd import status

NODE_EXPORTER = Path("/usr/bin/prometheus-node-exporter")

pytestmark = pytest.mark.skipif(not NODE_EXPORTER.exists(),
                                reason="no node_exporter (Debian package prometheus-node-exporter)")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SAMPLE = re.compile(r'^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> Samples:
    samples: Samples = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m:
            labels = frozenset(LABEL.findall(m.group(2) or ""))
            samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Exporter:
    def __init__(self, procs: Procs, log: Path, *collector: str) -> None:
        # a port found free may be taken before node_exporter binds it: try again
        for _ in range(5):
            self.url = f"http://127.0.0.1:{free_port()}/metrics"
            with open(log, "ab") as out:
                self.proc = procs.start([str(NODE_EXPORTER), "--collector.disable-defaults",
                                         *collector, "--web.listen-address="
                                         + self.url.split("/")[2]],
                                        stdout=out, stderr=out, stdin=subprocess.DEVNULL)
            if wait_for(lambda: self.proc.poll() is not None or self.fetch() is not None,
                        what="node_exporter listening") and self.proc.poll() is None:
                return
        raise AssertionError(log.read_text())

    def fetch(self) -> str | None:
        try:
            with urllib.request.urlopen(self.url, timeout=10) as r:
                return str(r.read().decode())
        except OSError:
            return None

    def samples(self) -> Samples:
        text = self.fetch()
        assert text is not None, "node_exporter stopped answering"
        return parse(text)


def runit(samples: Samples, service: str) -> dict[str, float]:
    """The runit collector's values for one service, by metric name."""
    want = frozenset({("service", service), ("supervisor", "runit")})
    return {name.removeprefix("node_service_"): v for (name, labels), v in samples.items()
            if name.startswith("node_service_") and labels == want}


def services(top: Path) -> None:
    make_service(top / "web", "exec sleep 1000")
    make_service(top / "idle", "exec sleep 1000", down=True)
    make_service(top / "stopping", "exec sleep 1000")


def test_runit_collector_reads_dtd_as_it_reads_runsv(daemon: Daemon, procs: Procs) -> None:
    if not have_ref("runsv"):
        pytest.skip("no runit")
    services(daemon.scan)
    daemon.start()
    theirs = daemon.top / "runit"
    services(theirs)
    for name in ("web", "idle", "stopping"):
        procs.start([ref("runsv"), str(theirs / name)], stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for top in (daemon.scan, theirs):
        for name in ("web", "stopping"):
            wait_for(lambda top=top, name=name: up_pid(top / name), what=f"{name} up")
        wait_for(lambda top=top: (top / "idle" / "supervise" / "status").exists(),
                 what="idle supervised")
    subprocess.run([ours("svc"), "-d", str(daemon.scan / "stopping")], check=True)
    subprocess.run([ref("sv"), "down", str(theirs / "stopping")], check=True,
                   capture_output=True)
    for top in (daemon.scan, theirs):
        wait_for(lambda top=top: up_pid(top / "stopping") == 0, what="stopping down")

    ne_ours = Exporter(procs, daemon.top / "ne-ours.log", "--collector.runit",
                       f"--collector.runit.servicedir={daemon.scan}")
    ne_theirs = Exporter(procs, daemon.top / "ne-theirs.log", "--collector.runit",
                         f"--collector.runit.servicedir={theirs}")
    ours_, theirs_ = ne_ours.samples(), ne_theirs.samples()
    assert ours_[("node_scrape_collector_success", frozenset({("collector", "runit")}))] == 1
    expected = {"web": (1, 1), "idle": (0, 0), "stopping": (0, 0)}  # state, desired state
    for name, (state, desired) in expected.items():
        got, ref_got = runit(ours_, name), runit(theirs_, name)
        assert (got["state"], got["desired_state"]) == (state, desired), (name, got)
        assert set(got) == {"state", "desired_state", "normal_state",
                            "state_last_change_timestamp_seconds"}, got
        # everything but the time is what runsv's files give
        untimed = {k: v for k, v in got.items() if "timestamp" not in k}
        assert untimed == {k: v for k, v in ref_got.items() if "timestamp" not in k}, name
        st = status.read(str(daemon.scan / name))
        assert st is not None
        assert got["state_last_change_timestamp_seconds"] == st.seconds, name

    # a change shows at the next scrape
    subprocess.run([ours("svc"), "-u", str(daemon.scan / "stopping")], check=True)
    wait_for(lambda: runit(ne_ours.samples(), "stopping")["state"] == 1, what="stopping up")
    assert runit(ne_ours.samples(), "stopping")["desired_state"] == 1


def test_textfile_collector_reads_dtdctl_metrics(daemon: Daemon, procs: Procs) -> None:
    make_service(daemon.scan / "web", "exec sleep 1000")
    make_service(daemon.scan / "idle", "exec sleep 1000", down=True)
    daemon.start()
    wait_for(lambda: up_pid(daemon.scan / "web"), what="web up")
    textfiles = daemon.top / "textfiles"
    textfiles.mkdir()
    prom = textfiles / "dtd.prom"

    def write() -> None:
        subprocess.run([ours("dtdctl"), "--socket", str(daemon.sock), "metrics", "-o", str(prom)],
                       check=True)
    write()
    ne = Exporter(procs, daemon.top / "ne.log", "--collector.textfile",
                  f"--collector.textfile.directory={textfiles}")
    got = ne.samples()
    assert got[("node_textfile_scrape_error", frozenset())] == 0
    assert got[("dtd_service_up", frozenset({("service", "web")}))] == 1
    assert got[("dtd_service_up", frozenset({("service", "idle")}))] == 0
    assert got[("dtd_service_normally_up", frozenset({("service", "idle")}))] == 0
    # every sample dtd wrote is served, with its value
    for key, value in parse(prom.read_text()).items():
        assert got[key] == value, key
    # node_exporter reads the file at each scrape: a rewrite shows at once
    subprocess.run([ours("svc"), "-d", str(daemon.scan / "web")], check=True)
    wait_for(lambda: up_pid(daemon.scan / "web") == 0, what="web down")
    wait_for(lambda: write() or parse(prom.read_text())[
        ("dtd_service_up", frozenset({("service", "web")}))] == 0, what="written down")
    got = ne.samples()
    assert got[("dtd_service_up", frozenset({("service", "web")}))] == 0
    assert got[("dtd_service_desired_up", frozenset({("service", "web")}))] == 0
