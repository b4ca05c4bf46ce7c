"""pgrphack against Debian's /usr/bin/pgrphack: the child leads a new session
and process group; usage and errors."""

from pathlib import Path

import pytest

from conftest import Procs, have_ref, ours, ref
from tooltools import compare

pytestmark = pytest.mark.skipif(not have_ref("pgrphack"), reason="daemontools not installed")


@pytest.mark.parametrize("args", [[], ["nosuchprogram"], ["sh", "-c", "exit 4"], ["true", "x"]])
def test_arguments_and_errors(tmp: Path, args: list[str]) -> None:
    compare("pgrphack", args, cwd=tmp)


def test_new_session(tmp: Path, procs: Procs) -> None:
    for prog in (ref("pgrphack"), ours("pgrphack")):
        # started in the test's own group (no new session), so that setsid works
        p = procs.start([prog, "sh", "-c", "cut -d' ' -f1,5,6 /proc/$$/stat"],
                        start_new_session=False, stdout=-1)
        out, _ = p.communicate(timeout=10)
        pid, pgrp, sid = out.split()
        assert pid == pgrp == sid and int(pid) == p.pid, prog


def test_setsid_failure_is_ignored(tmp: Path) -> None:
    # a session leader cannot setsid again: the child runs anyway
    got = compare("pgrphack", ["sh", "-c", "echo ran"], cwd=tmp)
    assert got == (0, b"ran\n", b"")
