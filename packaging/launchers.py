"""python3 packaging/launchers.py BINDIR: write the commands' launchers in
BINDIR again, without `import re`.

The `installer` of Debian and of the rpm build writes every console-script
launcher with `import re`, only to strip a Windows suffix from argv[0]. With
Debian's python3.11 that import costs 4 ms at every run of `svc`, `svstat`
or `svok`, which take some 13 ms without it. Each launcher keeps its first
line (the interpreter the installer chose) and calls what pyproject.toml
names for it.
"""

import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def launcher(shebang: str, target: str) -> str:
    module, func = target.split(":")
    return (f"{shebang}\nimport sys\nfrom {module} import {func}\n"
            f"if __name__ == \"__main__\":\n    sys.exit({func}())\n")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: launchers.py BINDIR", file=sys.stderr)
        return 100
    with open(PYPROJECT, "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    for name, target in scripts.items():
        path = Path(argv[1]) / name
        shebang = path.read_text().partition("\n")[0]
        if not shebang.startswith("#!"):
            print(f"launchers.py: {path} has no #! line", file=sys.stderr)
            return 111
        path.write_text(launcher(shebang, target))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
