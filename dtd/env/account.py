"""The account named by the first argument, as setuidgid and envuidgid take it."""

import os
import pwd
import sys

from dtd.diag import EXIT_USAGE, fatal, say


def parse(prog: str, argv: list[str] | None) -> tuple[pwd.struct_passwd, list[bytes]]:
    """``prog account child...``: the account's entry and the child's argv.

    Exits 100 with the reference's usage line when there is no child, 111
    for an account the system does not know.
    """
    args = [os.fsencode(a) for a in (sys.argv[1:] if argv is None else argv)]
    if len(args) < 2:
        say(f"{prog}: usage: {prog} account child")
        raise SystemExit(EXIT_USAGE)
    try:
        return pwd.getpwnam(os.fsdecode(args[0])), args[1:]
    except (KeyError, ValueError):
        fatal(prog, "unknown account ", args[0])
