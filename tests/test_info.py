"""supervise/info: the worker's key=value file beyond the status record."""

from pathlib import Path

from dtd import info
from dtd.info import Info


def test_round_trip() -> None:
    for inf in (Info(), Info(True, 1700000000.123456789, "listening on :80", 0, 0, 2, 1.5, False),
                Info(False, 0.0, "", -1, 15, 0, 0.0, True), Info(exit_code=255)):
        assert info.unpack(info.pack(inf)) == inf


def test_every_field_is_written_in_order() -> None:
    text = info.pack(Info(True, 12.5, "x", -1, 9, 4, 0.125, True)).decode()
    assert text == ("ready=1\nready_since=12.500000000\nstatus_text=x\nexit=-1\n"
                    "signal=9\nfails=4\nbackoff=0.125\nstopped=1\n")
    # no run has ended yet: exit is empty
    assert "\nexit=\n" in info.pack(Info()).decode()


def test_status_text_stays_on_one_line() -> None:
    inf = Info(status_text="two\nlines\r\nhere")
    assert info.pack(inf).count(b"\n") == 8
    assert info.unpack(info.pack(inf)).status_text == "two lines here"
    # '=' in the text is kept: only the first one splits
    assert info.unpack(info.pack(Info(status_text="a=b"))).status_text == "a=b"


def test_unknown_keys_and_bad_lines_are_ignored() -> None:
    data = (b"future=42\nready=1\nnonsense\nfails=x\nready_since=5.0\n"
            b"status_text=ok\nsignal=9\nexit=-1\nstopped=1\nbackoff=2.5\n")
    assert info.unpack(data) == Info(True, 5.0, "ok", -1, 9, 0, 2.5, True)
    # missing keys keep their defaults
    assert info.unpack(b"") == Info()
    assert info.unpack(b"ready=1") == Info(ready=True)


def test_read_and_write(tmp: Path) -> None:
    sup = tmp / "supervise"
    sup.mkdir()
    path, new = str(sup / "info"), str(sup / "info.new")
    assert info.read(path) is None  # daemontools' and runit's supervisors write none
    inf = Info(True, 3.0, "up", 0, 0, 0, 0.0, False)
    info.write(inf, path, new)
    assert info.read(path) == inf
    assert not (sup / "info.new").exists()
