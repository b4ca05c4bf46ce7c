"""svscan: the compatible face of the root daemon, as daemontools' svscan(8).

``svscan [DIR]`` supervises every service directory in DIR (default: the
current directory) in the foreground, exactly as ``dtd --scan DIR`` does.
"""

import sys

from dtd import daemon


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # like djb's: the first argument if any, the rest ignored
    return daemon.serve(args[0] if args else ".", "svscan")


if __name__ == "__main__":
    sys.exit(main())
