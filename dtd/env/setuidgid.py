"""setuidgid ACCOUNT CHILD...: run CHILD with ACCOUNT's uid and gid.

As the reference: the supplementary groups become exactly the account's
primary group (setgroups with that one gid), then setgid, then setuid.
Exit 100 for usage, 111 for an unknown account or a failed set*id or exec;
otherwise the child's exit code, since the child replaces us.
"""

import os
import pwd
import sys

from dtd.diag import EXIT_USAGE, error_str, fatal, say
from dtd.env.pathexec import run

PROG = "setuidgid"


def main(argv: list[str] | None = None) -> int:
    """argv: the arguments after the program name (default sys.argv[1:])."""
    args = [os.fsencode(a) for a in (sys.argv[1:] if argv is None else argv)]
    if len(args) < 2:
        say("setuidgid: usage: setuidgid account child")
        return EXIT_USAGE
    account = args[0]
    try:
        pw = pwd.getpwnam(os.fsdecode(account))
    except (KeyError, ValueError):
        fatal(PROG, "unknown account ", account)
    try:
        os.setgroups([pw.pw_gid])
        os.setgid(pw.pw_gid)
    except OSError as e:
        fatal(PROG, "unable to setgid: ", error_str(e.errno))
    try:
        os.setuid(pw.pw_uid)
    except OSError as e:
        fatal(PROG, "unable to setuid: ", error_str(e.errno))
    run(PROG, args[1:])


if __name__ == "__main__":
    sys.exit(main())
