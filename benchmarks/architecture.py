"""Architecture figures of the code base (issue 10): repeated code, longest functions, modules
that read the HDF5 schema, imports of other modules' private names.

    python benchmarks/architecture.py            # from the repository root

Definitions (the closing note of issue 10 reports them before and after):

- *repeated-code pairs*: pairs of places in ``landscape/`` and ``cli/`` sharing six or more lines
  of the same shape, as listed by the ``duplicates`` tool (skipped where it is not installed);
- *longest functions*: functions and methods by lines (``end_lineno - lineno + 1``);
- *schema readers*: modules outside the result classes' own modules that look into stored
  groups by hand (``.datasets[...]``, ``.attrs[...]`` / ``.attrs.get``, ``.groups[...]``,
  ``read_group(``, ``outline(``, ``h5py.File(``);
- *private imports*: ``from m import _name`` (or ``m._name``) where ``m`` is another module of
  the package (private *modules* with public names, such as ``_atomic``, are the shared-helper
  pattern and do not count).
- *library messages in CLI words* (issue 26): string literals in ``landscape/`` (docstrings
  excepted) that name a command-line flag (``--out``) or tell the user to run a
  ``landscape <command>``; the library names parameters, the CLI translates them to flags.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("landscape", "cli")
#: Modules whose job is the schema: storage (the file layer), _schema (validation helpers), and
#: the result classes' modules (each owns its group).
SCHEMA_OWNERS_PATTERN = re.compile(r"(storage|_schema|_atomic|results?|ratio_map|surface(_set)?|"
                                   r"trajectory|directions|connect\w*|_grid)\.py$")
_SCHEMA_READ = re.compile(r"\.(datasets|groups)\[|\.attrs(\[|\.get\()|read_group\(|"
                          r"outline\(|h5py\.File\(")


def _files() -> list[Path]:
    return sorted(p for s in SOURCES for p in (ROOT / s).rglob("*.py"))


def repeated_pairs() -> int | None:
    exe = shutil.which("duplicates")
    if exe is None:
        return None
    out = subprocess.run([exe, "--most", "200", "--seconds", "300"], cwd=ROOT,
                         capture_output=True, text=True).stdout
    rows = [ln for ln in out.splitlines() if re.match(r"^D\d+ ", ln)]
    return sum(1 for r in rows
               if all(side.strip().split(":")[0].split("/")[0] in SOURCES
                      for side in r.split(" ", 1)[1].split(" ~ ")))


def longest_functions(n: int = 5) -> list[tuple[int, str]]:
    found = []
    for p in _files():
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found.append((node.end_lineno - node.lineno + 1,
                              f"{p.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)[:n]


#: Result base classes that own their groups' layout (one module per family of results).
SCHEMA_OWNER_FILES = ("landscape/mechanisms/_common.py", "landscape/connect.py")


def schema_readers() -> list[str]:
    return [str(p.relative_to(ROOT)) for p in _files()
            if not SCHEMA_OWNERS_PATTERN.search(p.name)
            and str(p.relative_to(ROOT)) not in SCHEMA_OWNER_FILES
            and _SCHEMA_READ.search(p.read_text())]


def _module_of(p: Path) -> str:
    parts = list(p.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "cli":
        parts = ["landscape", "cli", *parts[1:]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    parts = dotted.split(".")[1:]
    if parts[:1] == ["cli"]:
        base = ROOT / "cli"
        parts = parts[1:]
    else:
        base = ROOT / "landscape"
    p = base.joinpath(*parts) if parts else base
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def private_imports() -> list[str]:
    hits = []
    for p in _files():
        here = _module_of(p)
        pkg = here if p.name == "__init__.py" else here.rsplit(".", 1)[0]
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = pkg.split(".")
                if node.level:
                    base = base[: len(base) - node.level + 1]
                    mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
                else:
                    mod = node.module or ""
                if not mod.startswith("landscape") or mod == here:
                    continue
                for a in node.names:
                    if _is_module(f"{mod}.{a.name}"):
                        continue  # a (private) module of shared helpers
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        hits.append(f"{p.relative_to(ROOT)}:{node.lineno} {mod}.{a.name}")
    return hits


#: The ``landscape`` subcommands (a message that says "run landscape hessian ..." counts).
_SUBCOMMANDS = ("demo", "train", "surface", "trajectory", "hessian", "info", "plot", "compare",
                "connect", "probe", "sharpening")
CLI_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
CLI_COMMAND = re.compile(rf"\blandscape ({'|'.join(_SUBCOMMANDS)})\b")


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


#: Literals that may say ``landscape <command>``, as they are no message to a user of the
#: library: what the demo (itself a CLI workflow) records as the command that wrote its files,
#: and the text of the study report it writes, which tells its reader to run other demo pairs.
#: Each entry: (file, start of the literal).
CLI_WORDS_ALLOWED = (
    ("landscape/demo.py", "landscape demo"),  # provenance={"command": "landscape demo"}
    ("landscape/study.py", "landscape demo"),  # the same provenance
    ("landscape/study.py", "not part of this study: run `landscape demo --pair"),  # claims
    ("landscape/study.py", "Written by `landscape demo`"),  # the README block it writes
)


def cli_word_allowed(hit: str) -> bool:
    """Whether a hit of :func:`cli_words` is one of :data:`CLI_WORDS_ALLOWED`."""
    where, text = hit.split(" ", 1)
    return any(where.split(":")[0] == f and text.startswith(t) for f, t in CLI_WORDS_ALLOWED)


def cli_words(package: str = "landscape") -> tuple[list[str], list[str]]:
    """Library string literals naming a CLI flag, and those naming a ``landscape`` command.

    Each hit is ``path:line text`` for one literal (implicitly concatenated pieces are one
    literal, an f-string is one, its replacement fields read as ``x``); docstrings do not
    count (they may say what the CLI calls a parameter).
    """
    flags, commands = [], []
    for p in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(p.read_text())
        skip = _docstrings(tree)
        parts = {}  # id of the f-string (or constant) -> its constant text
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                for v in node.values:
                    skip.add(id(v))
                parts[node] = "".join(v.value if isinstance(v, ast.Constant) else "x"
                                      for v in node.values)  # f"--{name}" is a flag too
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and id(node) not in skip:
                parts[node] = node.value
        for node, text in parts.items():
            where = f"{p.relative_to(ROOT)}:{node.lineno} {' '.join(text.split())[:90]}"
            if CLI_FLAG.search(text):
                flags.append(where)
            if CLI_COMMAND.search(text):
                commands.append(where)
    return sorted(flags), sorted(commands)


def main() -> int:
    pairs = repeated_pairs()
    print(f"repeated-code pairs (landscape/, cli/): "
          f"{'n/a (duplicates not installed)' if pairs is None else pairs}")
    print("five longest functions:")
    for n, where in longest_functions():
        print(f"  {n:4d} lines  {where}")
    readers = schema_readers()
    print(f"modules reading stored groups by hand (besides the owners): {len(readers)}")
    for r in readers:
        print(f"  {r}")
    priv = private_imports()
    print(f"imports of another module's private names: {len(priv)}")
    for h in priv:
        print(f"  {h}")
    flags, commands = cli_words()
    rest = [sum(not cli_word_allowed(h) for h in hits) for hits in (flags, commands)]
    print(f"library string literals naming a CLI flag: {len(flags)}, a landscape command: "
          f"{len(commands)}; besides the demo's provenance and report text: {rest[0]}, {rest[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
