"""make deb and make rpm: what the packages hold, lintian, the systemd unit,
the D-Bus policy, and a .deb installed, run and purged.

The package conflicts with Debian's daemontools, which the rest of the suite
needs as the reference, so the install test runs in a throwaway mount and
pid namespace whose /usr, /etc and /var are overlays with tmpfs upper
layers: whatever dpkg does there vanishes with the namespace."""

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Procs, make_service, ref, wait_for

ROOT = Path(__file__).resolve().parent.parent
SYS_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}
DEPS = ["python3-daemon", "python3-dbus-fast", "python3-h11", "python3-setproctitle"]
DEPS_CACHE = Path("/var/cache/dtd-test-debs")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (apt-get, dpkg, mounts)"),
    pytest.mark.skipif(shutil.which("apt-get") is None or shutil.which("make") is None,
                       reason="needs apt-get and make"),
]


def scripts(tree: Path = ROOT) -> list[str]:
    with open(tree / "pyproject.toml", "rb") as f:
        return sorted(tomllib.load(f)["project"]["scripts"])


def version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def make(target: str, dist: Path, cwd: Path = ROOT) -> None:
    r = subprocess.run(["make", "-s", target, f"PKG_DIST={dist}"], cwd=cwd, check=False,
                       capture_output=True, text=True, timeout=300)
    # The one failure that is the machine's, not the packaging's: apt-get
    # could not fetch the build tools (the debs target failed).
    if r.returncode != 0 and "debs] Error" in r.stderr:
        pytest.skip(f"build tools could not be installed: {r.stderr[-500:]}")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


@pytest.fixture(scope="module")
def dist() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="dtd-pkg-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def deb(dist: Path) -> Path:
    make("deb", dist)
    return dist / "deb" / f"dtd_{version()}_all.deb"


@pytest.fixture(scope="module")
def rpm(dist: Path) -> Path:
    make("rpm", dist)
    return dist / "rpm" / "RPMS" / "noarch" / f"dtd-{version()}-1.noarch.rpm"


def built_from(deb: Path) -> Path:
    """The source tree make deb built from: the checkout may change meanwhile
    (the man pages are being written by someone else)."""
    return deb.parent / f"dtd-{version()}"


def deb_entries(deb: Path) -> list[str]:
    out = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                         check=True).stdout
    return [line.split(None, 5)[5].removeprefix(".") for line in out.splitlines()]


def test_deb_holds_commands_pages_unit_policy_tmpfiles(deb: Path) -> None:
    entries = set(deb_entries(deb))
    for name in scripts(built_from(deb)):
        assert f"/usr/bin/{name}" in entries
    for page in sorted(built_from(deb).glob("man/*.[1-8]")):
        assert f"/usr/share/man/man{page.suffix[1:]}/{page.name}.gz" in entries
    for path in ["/lib/systemd/system/dtd.service", "/usr/lib/tmpfiles.d/dtd.conf",
                 "/usr/share/dbus-1/system.d/org.dtd.Supervise1.conf", "/etc/service/",
                 "/usr/lib/python3/dist-packages/dtd/clients/svstat.py",
                 "/usr/share/doc/dtd/copyright"]:
        assert path in entries
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Conflicts", "Replaces", "Depends"],
                            capture_output=True, text=True, check=True).stdout
    assert "Conflicts: daemontools, daemontools-run" in fields
    assert "Replaces: daemontools, daemontools-run" in fields
    for dep in DEPS:
        assert dep in fields


def test_deb_version_is_the_projects(deb: Path) -> None:
    head = (ROOT / "packaging/debian/changelog").read_text().splitlines()[0]
    assert head.startswith(f"dtd ({version()})")
    assert deb.exists()


def test_lintian_reports_no_errors(deb: Path) -> None:
    if shutil.which("lintian") is None:
        pytest.skip("lintian missing")
    r = subprocess.run(["lintian", "--display-info", str(deb)], capture_output=True, check=False,
                       text=True, env=SYS_ENV, timeout=300)
    errors = [line for line in r.stdout.splitlines() if line.startswith("E:")]
    assert errors == [], r.stdout
    assert r.returncode == 0, r.stdout + r.stderr


def test_make_deb_and_rpm_from_a_clean_clone(tmp: Path) -> None:
    """Only what git holds, nothing of this checkout's venv or build dirs."""
    clone = tmp / "clone"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    make("deb", tmp / "out", cwd=clone)
    make("rpm", tmp / "out", cwd=clone)
    names = set(deb_entries(tmp / "out" / "deb" / f"dtd_{version()}_all.deb"))
    assert "/usr/bin/dtd" in names and "/usr/bin/svc" in names
    files, _ = rpm_files(tmp / "out" / "rpm" / "RPMS" / "noarch" / f"dtd-{version()}-1.noarch.rpm")
    assert "/usr/bin/dtd" in files and "/usr/bin/svc" in files


def rpm_files(rpm: Path) -> tuple[set[str], set[str]]:
    out = subprocess.run(["rpm", "-qp", "--qf", "[%{FILEMODES:perms} %{FILENAMES}\n]", str(rpm)],
                         capture_output=True, text=True, check=True, env=SYS_ENV).stdout
    files: set[str] = set()
    dirs: set[str] = set()
    for line in out.splitlines():
        perms, name = line.split(" ", 1)
        (dirs if perms.startswith("d") else files).add(name)
    return files, dirs


def test_rpm_lists_the_same_files_as_the_deb(deb: Path, rpm: Path) -> None:
    entries = deb_entries(deb)
    deb_files = {e for e in entries if not e.endswith("/")}
    deb_dirs = {e.rstrip("/") for e in entries if e.endswith("/")}
    files, dirs = rpm_files(rpm)
    # Each format's own place for the licence and changelog; lintian's
    # overrides are Debian's alone.
    deb_files = {f for f in deb_files
                 if not f.startswith(("/usr/share/doc/", "/usr/share/lintian/"))}
    files = {f for f in files if not f.startswith("/usr/share/licenses/")}
    dirs = {d for d in dirs if not d.startswith("/usr/share/licenses/")}
    assert files == deb_files
    # The rpm owns only its own directories; the deb lists every parent too.
    assert dirs <= deb_dirs
    assert "/etc/service" in dirs


def unpack_rpm(rpm: Path, top: Path) -> Path:
    """The rpm's files under top (rpm2cpio and cpio: make test installs
    them)."""
    top.mkdir()
    payload = subprocess.run(["rpm2cpio", str(rpm)], capture_output=True, check=True).stdout
    subprocess.run(["cpio", "-idm", "--quiet"], input=payload, cwd=top, check=True)
    return top


def client_imports(top: Path, tmp: Path) -> dict[str, set[str]]:
    """What svc, svstat and svok, unpacked under top, import when Debian's
    python3 runs them on a directory."""
    env = {**SYS_ENV, "PYTHONPATH": str(top / "usr/lib/python3/dist-packages")}
    (tmp / "none").mkdir(exist_ok=True)
    found = {}
    for name in ("svc", "svstat", "svok"):
        args = ["-u"] if name == "svc" else []
        r = subprocess.run(["/usr/bin/python3", "-P", "-X", "importtime",
                            str(top / "usr/bin" / name), *args, str(tmp / "none")],
                           env=env, capture_output=True, text=True, check=False, timeout=30)
        rows = [line.split("|")[-1].strip() for line in r.stderr.splitlines()
                if line.startswith("import time:")]
        assert "dtd" in rows, r.stderr
        found[name] = set(rows)
    return found


def test_launchers_do_not_import_re(deb: Path, rpm: Path, tmp: Path) -> None:
    """installer writes launchers that import re to strip a Windows suffix
    from argv[0]: with Debian's python3 that is 5 to 6 ms on a 13 ms `svok`.
    Both packages' clients import no more than the clients need."""
    deb_top = tmp / "deb"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(deb_top)], check=True)
    for top in (deb_top, unpack_rpm(rpm, tmp / "rpm")):
        for name, modules in client_imports(top, tmp).items():
            assert "re" not in modules, (top, name)
        for name in scripts(built_from(deb)):
            text = (top / "usr/bin" / name).read_text()
            assert text.startswith("#!/usr/bin/python3\n") and "import re" not in text, text


def test_rpm_unpacked_svstat_runs_and_matches_the_reference(rpm: Path, tmp: Path,
                                                           procs: Procs) -> None:
    top = unpack_rpm(rpm, tmp / "root")
    svstat = top / "usr/bin/svstat"
    # Debian's interpreter, the one the package is for, with the unpacked
    # tree as its only source of dtd.
    env = {**SYS_ENV, "PYTHONPATH": str(top / "usr/lib/python3/dist-packages")}
    # -P: not the current directory either, which may be a checkout.
    where = subprocess.run(["/usr/bin/python3", "-P", "-c", "import dtd; print(dtd.__file__)"],
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(top))
    up = make_service(tmp / "up", "exec sleep 100")
    down = make_service(tmp / "down", "exec sleep 100")
    procs.start([ref("supervise"), str(up)])

    def both(d: Path) -> tuple[str, str]:
        ours = subprocess.run(["/usr/bin/python3", "-P", str(svstat), str(d)], env=env, check=False,
                              capture_output=True, text=True)
        theirs = subprocess.run([ref("svstat"), str(d)], capture_output=True, text=True,
                                check=False)
        mask = re.compile(r"\d+(?= seconds)|(?<=pid )\d+")
        return (mask.sub("N", ours.stdout + ours.stderr + str(ours.returncode)),
                mask.sub("N", theirs.stdout + theirs.stderr + str(theirs.returncode)))

    wait_for(lambda: "up (pid" in both(up)[1], what="reference supervise up")
    o, t = both(up)
    assert o == t and "up (pid N)" in o
    o, t = both(down)
    assert o == t and "unable to open supervise/ok: file does not exist" in o


# Run by Debian's python3 as pid 1 of a new mount and pid namespace; prints
# one JSON report. Every process it starts dies with the namespace at the
# latest, but dtd is stopped by pid, as systemd would stop it.
IN_NAMESPACE = r'''
import glob, json, os, signal, socket, subprocess, sys, time
tmp, deb, cache, repo = sys.argv[1:5]
env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
       "DEBIAN_FRONTEND": "noninteractive", "HOME": "/root"}
report = {}

def run(*argv):
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    return [r.returncode, r.stdout + r.stderr]

def wait_for(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True

def snapshot():
    seen = set()
    for top in ("/usr", "/etc", "/var"):
        for d, dirs, files in os.walk(top):
            seen.update(os.path.join(d, n) for n in dirs + files)
    return seen

subprocess.run(["mount", "-t", "tmpfs", "tmpfs", tmp], check=True)
for d in ("usr", "etc", "var"):
    os.makedirs(f"{tmp}/{d}.u")
    os.makedirs(f"{tmp}/{d}.w")
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir=/{d},upperdir={tmp}/{d}.u,workdir={tmp}/{d}.w", f"/{d}"],
                   check=True)
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run"], check=True)
scan = "/etc/service"
os.makedirs(scan, exist_ok=True)
# Whatever another supervisor left in the scan directory (runit links
# its default-syslog there) is not this test's business.
for entry in os.listdir(scan):
    os.unlink(os.path.join(scan, entry))

debs = sorted(glob.glob(os.path.join(cache, "*.deb")))
report["deps"] = run("dpkg", "-i", *debs) if debs else [0, ""]
# What daemontools takes with it when dpkg removes it for dtd; its
# directories are shared with other packages and stay.
listed = set(run("dpkg", "-L", "daemontools")[1].split())
gone = {p for p in listed if os.path.islink(p) or not os.path.isdir(p)}
before = snapshot() - gone
report["install"] = run("dpkg", "-i", deb)
report["daemontools"] = run("dpkg-query", "-W", "-f", "${Status}", "daemontools")
report["svc_owner"] = run("dpkg", "-S", "/usr/bin/svc")
report["run_dtd"] = os.path.isdir("/run/dtd")
report["verify_unit"] = run("systemd-analyze", "verify", "/lib/systemd/system/dtd.service")
report["verify_source"] = run("systemd-analyze", "verify", f"{repo}/packaging/dtd.service")
with open("/lib/systemd/system/dtd.service") as f:
    exec_start = [l.split("=", 1)[1].split() for l in f.read().splitlines()
                  if l.startswith("ExecStart=")][0]
report["exec_start"] = exec_start

svc = os.path.join(scan, "hello")
os.makedirs(os.path.join(svc, "log"))
with open(os.path.join(svc, "run"), "w") as f:
    f.write("#!/bin/sh\necho hello from dtd\nexec sleep 600\n")
with open(os.path.join(svc, "log", "run"), "w") as f:
    f.write("#!/bin/sh\nexec multilog t ./main\n")
os.chmod(os.path.join(svc, "run"), 0o755)
os.chmod(os.path.join(svc, "log", "run"), 0o755)

notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind("/run/notify.sock")
notify.settimeout(30)
with open(f"{tmp}/dtd.out", "w") as out:
    dtd = subprocess.Popen(exec_start, env={**env, "NOTIFY_SOCKET": "/run/notify.sock"},
                           stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd="/")
try:
    report["notify"] = notify.recv(4096).decode()
except socket.timeout:
    report["notify"] = None

def svstat():
    return run("svstat", svc)[1]

report["came_up"] = wait_for(lambda: ": up (pid" in svstat())
current = os.path.join(svc, "log", "main", "current")
report["logged"] = wait_for(lambda: os.path.exists(current)
                            and "hello from dtd" in open(current).read())
run("svc", "-d", svc)
report["went_down"] = wait_for(lambda: ": down " in svstat())
run("svc", "-u", svc)
report["came_up_again"] = wait_for(lambda: ": up (pid" in svstat())
dtd.send_signal(signal.SIGTERM)
try:
    report["dtd_exit"] = dtd.wait(timeout=40)
except subprocess.TimeoutExpired:
    report["dtd_exit"] = None
report["after_stop"] = svstat()
report["dtd_output"] = open(f"{tmp}/dtd.out").read()[-2000:]
me = os.getpid()

def reaped_all():
    # This script is the namespace's init: the workers and services that
    # outlive dtd for a moment are reparented to it, and it must reap them.
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    return all(p == str(me) for p in os.listdir("/proc") if p.isdigit())

wait_for(reaped_all, 10)
report["left_running"] = [open(f"/proc/{p}/cmdline").read().replace("\0", " ")
                          for p in os.listdir("/proc") if p.isdigit() and p != str(me)]

report["purge"] = run("dpkg", "--purge", "dtd")
report["run_dtd_after_purge"] = os.path.exists("/run/dtd")
after = snapshot()
user_data = os.path.realpath(scan) + "/"
# man-db caches the pages systemd-analyze looked up.
noise = ("/var/lib/dpkg/", "/var/log/", "/var/cache/debconf/", "/var/cache/ldconfig/",
         "/var/cache/man/")
report["left_behind"] = sorted(p for p in after - before
                               if not p.startswith(noise) and not p.startswith(user_data))
report["removed"] = sorted(p for p in before - after - listed if not p.startswith(noise))
print(json.dumps(report))
'''


def fetch_deps() -> None:
    """The four Python libraries and what they need, as .debs, downloaded
    once: apt-get resolves against this machine, whose namespace copy is
    what they get installed into."""
    DEPS_CACHE.mkdir(parents=True, exist_ok=True)
    (DEPS_CACHE / "partial").mkdir(exist_ok=True)
    r = subprocess.run(["apt-get", "install", "-y", "-q", "--download-only",
                        "--no-install-recommends", "-o", f"Dir::Cache::archives={DEPS_CACHE}",
                        *DEPS], env={**SYS_ENV, "DEBIAN_FRONTEND": "noninteractive"}, check=False,
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.skip(f"the dependencies could not be downloaded: {r.stderr[-500:]}")


def reference_svc_owner() -> str:
    return subprocess.run(["dpkg", "-S", "/usr/bin/svc"], capture_output=True, check=False,
                          text=True).stdout


def test_install_run_purge_in_a_throwaway_root(deb: Path, procs: Procs) -> None:
    if shutil.which("unshare") is None or shutil.which("systemd-analyze") is None:
        pytest.skip("unshare or systemd-analyze missing")
    fetch_deps()
    owner = reference_svc_owner()
    scratch = Path(tempfile.mkdtemp(prefix="dtd-ns-"))
    try:
        p = procs.start(["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
                         "--mount-proc", "/usr/bin/python3", "-c", IN_NAMESPACE,
                         str(scratch), str(deb), str(DEPS_CACHE), str(ROOT)],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=SYS_ENV)
        out, err = p.communicate(timeout=110)
        assert p.returncode == 0, err.decode()[-3000:]
        report = json.loads(out.decode().splitlines()[-1])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    # The machine's own daemontools is untouched.
    assert reference_svc_owner() == owner
    assert report["deps"][0] == 0, report["deps"][1]
    assert report["install"][0] == 0, report["install"][1]
    if owner.startswith("daemontools:"):
        # Conflicts + Replaces: dpkg takes daemontools out of the way by itself.
        assert "in favour of dtd" in report["install"][1]
        assert report["daemontools"][1].endswith(("not-installed", "config-files"))
    assert report["svc_owner"][1].startswith("dtd:")
    assert report["run_dtd"], "tmpfiles entry not applied"
    assert report["verify_unit"] == [0, ""], report["verify_unit"]
    assert report["verify_source"] == [0, ""], report["verify_source"]
    assert report["exec_start"] == ["/usr/bin/dtd", "--scan", "/etc/service"]
    assert report["notify"] is not None and "READY=1" in report["notify"], report["dtd_output"]
    assert report["came_up"] and report["logged"], report["dtd_output"]
    assert report["went_down"] and report["came_up_again"], report["dtd_output"]
    assert report["dtd_exit"] == 0, report["dtd_output"]
    assert "supervise not running" in report["after_stop"], report["after_stop"]
    assert report["left_running"] == []
    assert report["purge"][0] == 0, report["purge"][1]
    assert not report["run_dtd_after_purge"]
    assert report["left_behind"] == []
    assert report["removed"] == []


def test_unit_policy_and_pages_are_the_sources(deb: Path, tmp: Path) -> None:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
    source = built_from(deb)
    assert (tmp / "lib/systemd/system/dtd.service").read_bytes() == \
        (source / "packaging/dtd.service").read_bytes()
    assert (tmp / "usr/share/dbus-1/system.d/org.dtd.Supervise1.conf").read_bytes() == \
        (source / "packaging/org.dtd.Supervise1.conf").read_bytes()
    assert (tmp / "usr/lib/tmpfiles.d/dtd.conf").read_bytes() == \
        (source / "packaging/tmpfiles.d/dtd.conf").read_bytes()
    for page in sorted(source.glob("man/*.[1-8]")):
        packed = tmp / f"usr/share/man/man{page.suffix[1:]}/{page.name}.gz"
        assert gzip.decompress(packed.read_bytes()) == page.read_bytes()


# Owns org.dtd.Supervise1 on the given bus and answers nothing in particular:
# whether a call reaches it at all is what the policy decides.
OWNER = r'''
import asyncio, sys
from dbus_fast.aio import MessageBus

async def main():
    bus = await MessageBus(bus_address=sys.argv[1]).connect()
    print(await bus.request_name("org.dtd.Supervise1"), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
'''


def system_bus_config(sock: Path, policy: Path) -> str:
    """Debian's own system.conf, on a private socket, with our policy as its
    only service policy."""
    text = Path("/usr/share/dbus-1/system.conf").read_text()
    for tag in ("user", "pidfile", "servicehelper"):
        text = re.sub(rf"<{tag}>[^<]*</{tag}>", "", text)
    for tag in ("fork", "syslog", "standard_system_servicedirs"):
        text = text.replace(f"<{tag}/>", "")
    text = re.sub(r"<listen>[^<]*</listen>", f"<listen>unix:path={sock}</listen>", text)
    text = re.sub(r"<include[^>]*>[^<]*</include>", "", text)
    text = re.sub(r"<includedir>[^<]*</includedir>", "", text)
    return text.replace("</busconfig>", f"<include>{policy}</include>\n</busconfig>")


def test_dbus_policy_anyone_reads_only_root_acts(procs: Procs) -> None:
    for tool in ("dbus-daemon", "busctl", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} missing")
    pytest.importorskip("dbus_fast")
    # Not under pytest's 0700 tmp: the unprivileged caller must reach it.
    top = Path(tempfile.mkdtemp(prefix="dtd-policy-"))
    try:
        top.chmod(0o755)
        sock = top / "bus"
        conf = top / "bus.conf"
        conf.write_text(system_bus_config(sock, ROOT / "packaging/org.dtd.Supervise1.conf"))
        # stderr: it says, as root in a container, that it could not raise its
        # descriptor limit.
        procs.start(["dbus-daemon", "--nofork", f"--config-file={conf}"],
                    stderr=subprocess.DEVNULL)
        wait_for(sock.exists, what="private system bus")
        address = f"unix:path={sock}"

        def call(uid: int, *args: str) -> str:
            argv = ["busctl", f"--address={address}", "--timeout=5", "call", *args]
            if uid:
                argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv]
            r = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
            return "denied" if "Access denied" in r.stderr or "AccessDenied" in r.stderr \
                else "passed"

        name = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                "RequestName", "su", "org.dtd.Supervise1", "4")
        assert call(65534, *name) == "denied"
        owner = procs.start([sys.executable, "-c", OWNER, address],
                            stdout=subprocess.PIPE)
        assert owner.stdout is not None
        assert b"PRIMARY_OWNER" in owner.stdout.readline()

        dest = ("org.dtd.Supervise1",)
        manager = (*dest, "/org/dtd/Supervise1", "org.dtd.Supervise1.Manager")
        web = (*dest, "/org/dtd/Supervise1/service/web")
        service = (*web, "org.dtd.Supervise1.Service")
        props = (*web, "org.freedesktop.DBus.Properties")
        reads: list[tuple[str, ...]] = [
            (*manager, "ListServices"),
            (*manager, "GetService", "s", "web"),
            (*web, "org.freedesktop.DBus.Introspectable", "Introspect"),
            (*props, "Get", "ss", "org.dtd.Supervise1.Service", "state"),
            (*props, "GetAll", "s", "org.dtd.Supervise1.Service"),
            (*dest, "/org/dtd/Supervise1", "org.freedesktop.DBus.ObjectManager",
             "GetManagedObjects"),
        ]
        acts: list[tuple[str, ...]] = [(*service, verb) for verb in ("Up", "Down", "Once", "Pause", "Continue",
                                              "Hangup", "Alarm", "Interrupt", "Terminate",
                                              "Kill", "Exit")]
        acts += [(*manager, "Rescan"), (*manager, "Up", "s", "web"),
                 (*props, "Set", "ssv", "org.dtd.Supervise1.Service", "want", "s", "up")]
        for args in reads:
            assert call(65534, *args) == "passed", args
            assert call(0, *args) == "passed", args
        for args in acts:
            assert call(65534, *args) == "denied", args
            assert call(0, *args) == "passed", args
    finally:
        procs.stop_all()
        shutil.rmtree(top, ignore_errors=True)
