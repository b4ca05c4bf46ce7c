"""The man pages in man/: one per command, every option of a command in its
page, the exit codes the code uses in EXIT STATUS, pages named in SEE ALSO
present, and every page clean under ``mandoc -T lint`` and ``groff -ww``.

The options are taken from the code, not from a list kept here: the getopt
strings of the djb-style commands (sgetopt's ``Options(..., SPEC)``, svc's
``OPTIONS``), the ``--help`` output of the argparse commands, and the action
characters that multilog's script parser tells apart.
"""

import ast
import functools
import importlib.util
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from conftest import ours

ROOT = Path(__file__).resolve().parent.parent
MAN = ROOT / "man"
SECTIONS = "18"  # where a command's page may be: dtdctl in 1, the rest in 8
# pages that belong to no command
TOPICS = ["dtd-api.7"]
# where a command reads its arguments as something other than options
SCRIPT_PARSERS = {"multilog": ("dtd.log.multilog_script", "parse")}
REQUIRED = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "FILES", "SEE ALSO"]
REQUIRED_TOPIC = ["NAME", "DESCRIPTION", "SEE ALSO"]


def scripts() -> dict[str, str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return dict(tomllib.load(f)["project"]["scripts"])


SCRIPTS = scripts()


def page_of(cmd: str) -> Path | None:
    for sec in SECTIONS:
        path = MAN / f"{cmd}.{sec}"
        if path.exists():
            return path
    return None


def all_pages() -> list[Path]:
    return sorted(p for p in MAN.iterdir() if re.fullmatch(r".+\.[1-8]", p.name))


def module_source(cmd: str) -> tuple[str, str]:
    """The module of a console script: its name and its source."""
    module = SCRIPTS[cmd].partition(":")[0]
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    return module, Path(spec.origin).read_text()


# ---- roff to plain text, enough for tags, sections and names -----------

ESCAPES = {"-": "-", "|": "", "&": "", "e": "\\", "~": " ", "^": "", " ": " ", ".": "."}
SPECIALS = {"aq": "'", "dq": '"', "em": "--", "en": "-", "bu": "*", "lq": '"', "rq": '"'}


def unescape(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\" or i + 1 == len(text):
            out.append(c)
            i += 1
            continue
        n = text[i + 1]
        if n == "f":  # a font change: \fB, \f(CW, \f[B]
            if text[i + 2:i + 3] == "(":
                i += 5
            elif text[i + 2:i + 3] == "[":
                i = text.index("]", i) + 1
            else:
                i += 3
        elif n == "(":
            out.append(SPECIALS.get(text[i + 2:i + 4], "?"))
            i += 4
        elif n in ESCAPES:
            out.append(ESCAPES[n])
            i += 2
        else:
            out.append(n)
            i += 2
    return "".join(out)


def macro_args(rest: str) -> list[str]:
    """A macro line's arguments, with roff's double quotes."""
    args: list[str] = []
    for m in re.finditer(r'"((?:[^"]|"")*)"|(\S+)', rest):
        args.append(m.group(1).replace('""', '"') if m.group(1) is not None else m.group(2))
    return args


def text_of(line: str) -> str:
    """A source line as the reader sees it (font macros joined, escapes done)."""
    if line.startswith((".", "'")):
        name, _, rest = line[1:].partition(" ")
        args = macro_args(rest)
        joined = "".join(args) if len(name) == 2 and set(name) <= set("BIR") else " ".join(args)
        return unescape(joined)
    return unescape(line)


def sections(path: Path) -> dict[str, list[str]]:
    """The page's source lines under each .SH heading (subsections included)."""
    result: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text().splitlines():
        if line.startswith(".SH"):
            current = result.setdefault(text_of(line).strip(), [])
        elif current is not None:
            current.append(line)
    return result


def option_lines(page: Path) -> list[str]:
    """Where a page describes what its command accepts: OPTIONS, and
    COMMANDS for a command with subcommands."""
    found = sections(page)
    return found.get("COMMANDS", []) + found.get("OPTIONS", [])


def tags(lines: list[str]) -> list[str]:
    """The tags of .TP and .IP paragraphs, as plain text."""
    found = []
    for i, line in enumerate(lines):
        if line.startswith(".TP") or line.startswith(".TQ"):
            if i + 1 < len(lines):
                found.append(text_of(lines[i + 1]).strip())
        elif line.startswith(".IP "):
            args = macro_args(line[4:])
            if args:
                found.append(unescape(args[0]).strip())
    return found


def is_option(word: str) -> bool:
    """``-x`` or ``--long``; not multilog's ``-`` action."""
    return re.fullmatch(r"--?[A-Za-z0-9][\w-]*", word) is not None


def alternatives(tag: str) -> list[str]:
    """``-h, --help`` and ``./dir, /dir`` name two things each."""
    return [a.strip() for a in tag.split(", ")]


def documents(tag_texts: list[str], option: str) -> bool:
    """Some tag starts with option: whole, for ``-x``/``--long`` (so that
    ``--stop`` is not found in ``--stop-timeout``); as a prefix for an
    action character (multilog's ``s`` in ``ssize``)."""
    for tag in tag_texts:
        for alt in alternatives(tag):
            if not alt.startswith(option):
                continue
            after = alt[len(option):len(option) + 1]
            if not is_option(option) or not (after.isalnum() or after == "-"):
                return True
    return False


# ---- options from the code ---------------------------------------------


def spec_letters(spec: bytes) -> set[str]:
    return {"-" + chr(c) for c in spec if c != ord(":")}


def getopt_options(source: str) -> set[str]:
    """Letters of sgetopt specs (``Options(prog, args, SPEC)``) and of a
    module-level ``OPTIONS`` byte string (svc's own parser)."""
    tree = ast.parse(source)
    constants: dict[str, bytes] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, bytes):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = node.value.value
    found: set[str] = set()
    if "OPTIONS" in constants:
        found |= spec_letters(constants["OPTIONS"])
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) \
                and call.func.id == "Options" and len(call.args) >= 3:
            spec = call.args[2]
            if isinstance(spec, ast.Constant) and isinstance(spec.value, bytes):
                found |= spec_letters(spec.value)
            elif isinstance(spec, ast.Name):
                found |= spec_letters(constants[spec.id])
    return found


def parse_help(text: str) -> tuple[set[str], set[str]]:
    """The options and the subcommands a --help text shows.

    Options come from the usage lines' brackets and from argparse's options
    section, not from the help texts, which may quote other commands'
    options ("svc -u"). Subcommands come from argparse's positional section
    (listed under a metavar) or from a ``commands:`` paragraph of
    alternatives (``status [NAME...] | up|down NAME... | ...``).
    """
    options: set[str] = set()
    commands: set[str] = set()
    section = ""
    option = r"(?<![\w-])--?[A-Za-z][\w-]*"
    for line in text.splitlines():
        continued = line.startswith(" ")
        if line and not continued:
            section, _, line = line.partition(":")
            line = " " + line
        if section == "usage":
            options |= {o for b in re.findall(r"\[([^]]*)\]", line) for o in re.findall(option, b)}
            if continued and re.match(r"  [a-z]", line):  # hand-written: a command a line
                words = line.split()
                commands |= {w for w in words[0].split("|") if re.fullmatch(r"[a-z][\w-]*", w)}
        elif section in ("options", "optional arguments"):
            m = re.match(r" +(-\S.*?)(?: {2,}|$)", line)
            if m:
                options |= set(re.findall(option, m.group(1)))
        elif section == "positional arguments":
            m = re.match(r" {4}([a-z][\w-]*)(?: {2,}|$)", line)
            if m:
                commands.add(m.group(1))
        elif section == "commands":
            for alt in line.split(" | "):
                words = alt.split()
                if words:
                    commands |= {w for w in words[0].split("|") if re.fullmatch(r"[a-z][\w-]*", w)}
    return options, commands


def help_options(cmd: str, *sub: str, recurse: bool = True) -> set[str]:
    """Options and subcommands from a command's --help, and (argparse) the
    options of each subcommand from its own --help."""
    out = subprocess.run([ours(cmd), *sub, "--help"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    options, commands = parse_help(out.stdout)
    found = options | commands
    if recurse:
        for name in commands:
            found |= help_options(cmd, *sub, name)
    return found


def script_actions(module: str, function: str) -> set[str]:
    """The one-byte constants that a script parser compares arguments with."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text())
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function)
    return {n.value.decode() for n in ast.walk(fn)
            if isinstance(n, ast.Constant) and isinstance(n.value, bytes) and len(n.value) == 1}


@functools.cache
def options_of(cmd: str) -> frozenset[str]:
    module, source = module_source(cmd)
    found = getopt_options(source)
    if "import argparse" in source:
        found |= help_options(cmd)
    elif '"--help"' in source:
        # a hand-parsed command line (dtdctl, for its start-up time): one
        # usage text for all, and -h/--help themselves
        found |= help_options(cmd, recurse=False) | {"-h", "--help"}
    if cmd in SCRIPT_PARSERS:
        found |= script_actions(*SCRIPT_PARSERS[cmd])
    return frozenset(found)


def exit_codes_used(source: str) -> set[str]:
    """The exit codes a module's own code can end with, by what it calls."""
    codes = set()
    if re.search(r"\bEXIT_USAGE\b|\busage\(", source):
        codes.add("100")
    if re.search(r"\bEXIT_TEMP\b|\bfatal\(|\bdie\(", source):
        codes.add("111")
    # a command's own codes, such as dtdctl's EXIT_NOT = 1
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, int) and not isinstance(node.value.value, bool):
            if any(isinstance(t, ast.Name) and t.id.startswith("EXIT_") for t in node.targets):
                codes.add(str(node.value.value))
    return codes


# ---- the tests -----------------------------------------------------------


def test_the_option_derivation_sees_the_options() -> None:
    """Guards the test itself: the parsers above find what the commands
    take, so the checks below cannot pass on empty sets."""
    assert options_of("svc") == spec_letters(b"udopchaitkx")
    assert {"-n", "-N", "-x", "-X"} <= options_of("setlock")
    assert {"-m", "-t"} <= options_of("softlimit")
    assert {"--scan", "--stop-timeout", "-h"} <= options_of("dtd")
    assert {"status", "up", "exit", "wait", "--json", "--timeout", "-o"} <= options_of("dtdctl")
    assert "-u" not in options_of("dtdctl")  # in a help text ("svc -u"), not an option
    assert {"t", "+", "-", "e", "=", "s", "n", "!", ".", "/"} <= options_of("multilog")
    assert options_of("svok") == set()
    assert exit_codes_used(module_source("dtdctl")[1]) >= {"1", "100", "111"}
    assert documents(["-h, --help"], "--help") and not documents(["--stop-timeout S"], "--stop")
    assert documents(["ssize"], "s") and not documents(["-nNxX"], "-n")


@pytest.mark.parametrize("cmd", sorted(SCRIPTS))
def test_every_command_has_a_page(cmd: str) -> None:
    assert page_of(cmd) is not None, f"no man/{cmd}.[{SECTIONS}]"


@pytest.mark.parametrize("cmd", sorted(SCRIPTS))
def test_every_option_is_in_the_page(cmd: str) -> None:
    page = page_of(cmd)
    if page is None:
        pytest.skip("no page (reported by test_every_command_has_a_page)")
    described = tags(option_lines(page))
    missing = sorted(o for o in options_of(cmd) if not documents(described, o))
    assert not missing, f"{page.name} does not describe {missing} under OPTIONS or COMMANDS"


@pytest.mark.parametrize("cmd", sorted(SCRIPTS))
def test_the_page_documents_no_option_the_command_lacks(cmd: str) -> None:
    page = page_of(cmd)
    if page is None:
        pytest.skip("no page")
    if cmd in SCRIPT_PARSERS:
        pytest.skip("its arguments are actions, not options (``-pattern``)")
    accepted = options_of(cmd)
    described = tags(option_lines(page))
    claimed = {m.group(0) for tag in described for alt in alternatives(tag)
               for m in [re.match(r"--?[A-Za-z][\w-]*", alt)] if m}
    extra = sorted(claimed - accepted)
    assert not extra, f"{page.name} describes {extra}, which {cmd} does not accept"


@pytest.mark.parametrize("cmd", sorted(SCRIPTS))
def test_the_exit_codes_of_the_code_are_in_the_page(cmd: str) -> None:
    page = page_of(cmd)
    if page is None:
        pytest.skip("no page")
    _, source = module_source(cmd)
    listed = set(tags(sections(page).get("EXIT STATUS", [])))
    missing = sorted(exit_codes_used(source) - listed)
    assert not missing, f"{page.name}: EXIT STATUS lacks {missing}"


@pytest.mark.parametrize("page", all_pages(), ids=lambda p: p.name)
def test_the_page_has_the_sections(page: Path) -> None:
    found = sections(page)
    required = REQUIRED_TOPIC if page.name in TOPICS else REQUIRED
    missing = [s for s in required if s not in found]
    assert not missing, f"{page.name} lacks {missing}"
    name = "\n".join(found["NAME"])
    assert text_of(name).startswith(page.stem + " - ") or \
        unescape(name).startswith(page.stem + " - "), name


@pytest.mark.parametrize("page", all_pages(), ids=lambda p: p.name)
def test_the_title_names_the_page(page: Path) -> None:
    first = next(line for line in page.read_text().splitlines() if not line.startswith("'\\\""))
    args = macro_args(first[4:])
    assert first.startswith(".TH ") and unescape(args[0]) == page.stem.upper() \
        and args[1] == page.suffix[1:], first


def test_there_is_no_stray_page() -> None:
    expected = {p.name for p in map(page_of, SCRIPTS) if p} | set(TOPICS)
    assert {p.name for p in all_pages()} == expected
    for topic in TOPICS:
        assert (MAN / topic).exists(), topic


@pytest.mark.parametrize("page", all_pages(), ids=lambda p: p.name)
def test_see_also_names_pages_that_exist(page: Path) -> None:
    refs = re.findall(r"^\.BR (\S+) \((\d)\)", "\n".join(sections(page)["SEE ALSO"]), re.M)
    assert refs, f"{page.name}: SEE ALSO names nothing"
    ours_ = set(SCRIPTS) | {Path(t).stem for t in TOPICS}
    for name, sec in refs:
        name = unescape(name)
        if name in ours_:
            assert (MAN / f"{name}.{sec}").exists(), f"{page.name} names {name}({sec})"


@pytest.mark.parametrize("page", all_pages(), ids=lambda p: p.name)
def test_mandoc_lint_is_quiet(page: Path) -> None:
    if shutil.which("mandoc") is None:
        pytest.skip("mandoc is not installed (Debian package mandoc)")
    out = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", str(page)],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout + out.stderr == "" and out.returncode == 0


@pytest.mark.parametrize("page", all_pages(), ids=lambda p: p.name)
def test_groff_is_quiet(page: Path) -> None:
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed (Debian package groff-base)")
    # a page with a table says so on its first line ('\" t), as man(1) expects
    tbl = ["-t"] if page.read_text().startswith("'\\\" t") else []
    out = subprocess.run(["groff", "-ww", "-z", *tbl, "-man", str(page)],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout + out.stderr == "" and out.returncode == 0
