"""setuidgid ACCOUNT CHILD...: run CHILD with ACCOUNT's uid and gid.

As the reference: the supplementary groups become exactly the account's
primary group (setgroups with that one gid), then setgid, then setuid.
Exit 100 for usage, 111 for an unknown account or a failed set*id or exec;
otherwise the child's exit code, since the child replaces us.
"""

import os
import sys

from dtd.diag import error_str, fatal
from dtd.env import account
from dtd.env.pathexec import run

PROG = "setuidgid"


def main(argv: list[str] | None = None) -> int:
    """argv: the arguments after the program name (default sys.argv[1:])."""
    pw, child = account.parse(PROG, argv)
    try:
        os.setgroups([pw.pw_gid])
        os.setgid(pw.pw_gid)
    except OSError as e:
        fatal(PROG, "unable to setgid: ", error_str(e.errno))
    try:
        os.setuid(pw.pw_uid)
    except OSError as e:
        fatal(PROG, "unable to setuid: ", error_str(e.errno))
    run(PROG, child)


if __name__ == "__main__":
    sys.exit(main())
