"""softlimit against Debian's /usr/bin/softlimit: the limits a child sees, as
``ulimit`` and /proc/self/limits show them, for every option; hard limits
that cap the request; djb's number parsing; getopt's messages."""

import resource
from typing import Callable

import pytest

from conftest import have_ref
from tooltools import compare

pytestmark = pytest.mark.skipif(not have_ref("softlimit"), reason="daemontools not installed")

SHOW = ["sh", "-c", "ulimit -S -a; ulimit -H -a; cat /proc/self/limits"]
BIG = "18446744073709551617"  # wraps to 1 in djb's scan_ulong


def hard(res: int, limit: int) -> Callable[[], None]:
    """A preexec lowering one hard limit, so that requests above it are capped.
    The limits leave room for a Python interpreter to start."""
    def lower() -> None:
        soft, top = resource.getrlimit(res)
        new = limit if top < 0 else min(top, limit)
        resource.setrlimit(res, (new if soft < 0 else min(soft, new), new))
    return lower


# -t 0 is left out here: a CPU limit of 0 s sends SIGXCPU at the next clock
# tick or not, at random, to the reference's child as to ours
@pytest.mark.parametrize("opt,value", [
    (o, v) for o in "mdslaopfcrt" for v in ["0", "1", "4096", "1000000", "=", "", BIG]
    if not (o == "t" and v in ("0", ""))
])
def test_each_option(opt: str, value: str) -> None:
    compare("softlimit", [f"-{opt}", value, *SHOW])


@pytest.mark.parametrize("res,opt,limit", [
    (resource.RLIMIT_NOFILE, "-o", 512), (resource.RLIMIT_CPU, "-t", 50),
    (resource.RLIMIT_DATA, "-m", 2_000_000_000), (resource.RLIMIT_AS, "-a", 2_000_000_000),
    (resource.RLIMIT_CORE, "-c", 5_000_000), (resource.RLIMIT_STACK, "-s", 100_000_000),
    (resource.RLIMIT_FSIZE, "-f", 5_000_000),
])
@pytest.mark.parametrize("value", ["100", "3000000000", BIG, "="])
def test_above_the_hard_limit_is_capped(res: int, opt: str, limit: int, value: str) -> None:
    compare("softlimit", [opt, value, *SHOW], preexec=hard(res, limit))


def test_zero_cpu_seconds() -> None:
    got = compare("softlimit", ["-t", "", "sh", "-c", "while :; do :; done"])
    assert got[0] == -24  # SIGXCPU


def test_several_options_apply_in_order() -> None:
    compare("softlimit", ["-m", "50000000", "-d", "=", "-t5", "-o", "64", *SHOW])


@pytest.mark.parametrize("args", [
    [], ["-t"], ["-t", "5"], ["-z"], ["-z", "true"], ["-tz", "true"], ["-t", "abc", "true"],
    ["-t", "5x", "true"], ["-t", "-1", "true"], ["-t", " 5", "true"], ["-t", "+5", "true"],
    ["-t", "==", "true"], ["-t", "5", "-z", "true"], ["-zt", "true"], ["--", "true"],
    ["--x", "true"], ["-"], ["-o", "1", "-"], ["-t", "5", "--", "-t"], ["nosuchprogram"],
    ["-t", "1", "sh", "-c", "exit 9"],
])
def test_arguments_and_errors(args: list[str]) -> None:
    compare("softlimit", args)


def test_usage_exit_code() -> None:
    assert compare("softlimit", ["-q"])[0] == 100
    assert compare("softlimit", ["nosuchprogram"])[0] == 111


@pytest.mark.slow
def test_cpu_limit_is_enforced() -> None:
    # a real effect, not just a number: the child gets SIGXCPU at 1 s of CPU
    got = compare("softlimit", ["-t", "1", "sh", "-c", "while :; do :; done"])
    assert got[0] == -24  # SIGXCPU
