"""softlimit [-a -c -d -f -l -m -o -p -r -s -t N] CHILD...: run CHILD with
new soft resource limits.

N is a decimal number or ``=`` for the hard limit. As the reference does:
a limit above the hard limit is lowered to it, an empty N means 0, digits
beyond 2^64 wrap (djb's scan_ulong does not check for overflow), and -m is
-d -s -l -a. Options take effect in order, each as it is parsed.
"""

import os
import resource
import sys

from dtd.diag import EXIT_USAGE, error_str, fatal, say
from dtd.env.pathexec import run
from dtd.env.sgetopt import PROBLEM, Options, progname

PROG = "softlimit"
USAGE = ("softlimit: usage: softlimit [-a allbytes] [-c corebytes] [-d databytes]"
         " [-f filebytes] [-l lockbytes] [-m membytes] [-o openfiles] [-p processes]"
         " [-r residentbytes] [-s stackbytes] [-t cpusecs] child")
# Linux has neither RLIMIT_VMEM nor RLIMIT_OFILE; -m is DATA, STACK,
# MEMLOCK, AS in the reference's order
RESOURCES: dict[int, tuple[int, ...]] = {
    ord("a"): (resource.RLIMIT_AS,),
    ord("c"): (resource.RLIMIT_CORE,),
    ord("d"): (resource.RLIMIT_DATA,),
    ord("f"): (resource.RLIMIT_FSIZE,),
    ord("l"): (resource.RLIMIT_MEMLOCK,),
    ord("m"): (resource.RLIMIT_DATA, resource.RLIMIT_STACK,
               resource.RLIMIT_MEMLOCK, resource.RLIMIT_AS),
    ord("o"): (resource.RLIMIT_NOFILE,),
    ord("p"): (resource.RLIMIT_NPROC,),
    ord("r"): (resource.RLIMIT_RSS,),
    ord("s"): (resource.RLIMIT_STACK,),
    ord("t"): (resource.RLIMIT_CPU,),
}
SPEC = b"a:c:d:f:l:m:o:p:r:s:t:"
ULONG = 1 << 64


def usage() -> int:
    say(USAGE)
    return EXIT_USAGE


def unsigned(limit: int) -> int:
    """rlim_t as C sees it: Python shows RLIM_INFINITY (2^64-1) as -1."""
    return limit % ULONG


def signed(limit: int) -> int:
    """rlim_t as Python's setrlimit takes it, through a C long long."""
    return limit - ULONG if limit >= ULONG // 2 else limit


def number(arg: bytes) -> int | None:
    """scan_ulong over the whole argument, or None if anything follows the digits."""
    if arg and not arg.isdigit():
        return None
    return int(arg or b"0") % ULONG


def doit(res: int, arg: bytes) -> bool:
    try:
        soft, hard = resource.getrlimit(res)
    except OSError as e:
        fatal(PROG, "getrlimit failed: ", error_str(e.errno))
    if arg == b"=":
        soft = hard
    else:
        u = number(arg)
        if u is None:
            return False
        soft = hard if u > unsigned(hard) else signed(u)
    try:
        resource.setrlimit(res, (soft, hard))
    except OSError as e:
        fatal(PROG, "setrlimit failed: ", error_str(e.errno))
    return True


def main(argv: list[str] | None = None) -> int:
    """argv: the arguments after the program name (default sys.argv[1:])."""
    args = [os.fsencode(a) for a in (sys.argv[1:] if argv is None else argv)]
    opts = Options(progname(PROG, argv), args, SPEC)
    for opt, arg in opts:
        if opt == PROBLEM or arg is None:
            return usage()
        for res in RESOURCES[opt]:
            if not doit(res, arg):
                return usage()
    child = opts.rest
    if not child:
        return usage()
    run(PROG, child)


if __name__ == "__main__":
    sys.exit(main())
