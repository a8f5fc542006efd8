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
                                   r"trajectory|directions|connect\w*|_grid|blocks|shards)\.py$")
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


def function_sizes(n: int = 10) -> list[tuple[int, int, str]]:
    """The ``n`` longest functions of ``landscape/``: (lines, parameters, where)."""
    found = []
    for p in _files():
        if p.parts[len(ROOT.parts)] != "landscape":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                a = node.args
                n_params = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs)
                if a.args and a.args[0].arg in ("self", "cls"):
                    n_params -= 1
                found.append((node.end_lineno - node.lineno + 1, n_params,
                              f"{p.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)[:n]


def handler_lines() -> dict[str, int]:
    """Lines of each CLI command's handler: ``run`` plus the private functions it reaches."""
    out = {}
    for p in sorted((ROOT / "cli").glob("*.py")):
        tree = ast.parse(p.read_text())
        funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        if "run" not in funcs:
            continue
        seen, todo = set(), ["run"]
        while todo:
            name = todo.pop()
            if name in seen or name not in funcs:
                continue
            seen.add(name)
            todo.extend(c.func.id for c in ast.walk(funcs[name])
                        if isinstance(c, ast.Call) and isinstance(c.func, ast.Name))
        out[p.stem] = sum(funcs[f].end_lineno - funcs[f].lineno + 1 for f in seen)
    return out


def import_circles(lazy: bool = False) -> list[list[str]]:
    """Import circles among ``landscape`` modules: at module load (top-level imports), or with
    ``lazy`` also counting the imports inside functions."""
    graph: dict[str, set[str]] = {}
    for p in _files():
        here = _module_of(p)
        pkg = here if p.name == "__init__.py" else here.rsplit(".", 1)[0]
        edges = graph.setdefault(here, set())
        tree = ast.parse(p.read_text())
        typing_only = {id(n) for i in ast.walk(tree)
                       if isinstance(i, ast.If) and "TYPE_CHECKING" in ast.unparse(i.test)
                       for b in i.body for n in ast.walk(b)}
        for node in (ast.walk(tree) if lazy else tree.body):
            if id(node) in typing_only:
                continue
            for imp in ([node] if isinstance(node, ast.Import | ast.ImportFrom) else []):
                if isinstance(imp, ast.Import):
                    mods = [a.name for a in imp.names]
                else:
                    base = pkg.split(".")
                    if imp.level:
                        base = base[: len(base) - imp.level + 1]
                        mod = ".".join([*base, *(imp.module.split(".") if imp.module else [])])
                    else:
                        mod = imp.module or ""
                    mods = [f"{mod}.{a.name}" if _is_module(f"{mod}.{a.name}") else mod
                            for a in imp.names]
                edges.update(m for m in mods if m.startswith("landscape") and m != here)
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    sccs: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return sccs


def curvature_fields() -> int | None:
    tree = ast.parse((ROOT / "landscape/hessian/results.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "CurvatureResult":
            return sum(isinstance(b, ast.AnnAssign) for b in node.body)
    return None


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
    readers = schema_readers()
    print(f"modules reading stored groups by hand (besides the owners): {len(readers)}")
    for r in readers:
        print(f"  {r}")
    priv = private_imports()
    print(f"imports of another module's private names: {len(priv)}")
    for h in priv:
        print(f"  {h}")
    print("ten longest functions of landscape/ (lines, parameters):")
    for n, k, where in function_sizes():
        print(f"  {n:4d} lines  {k:3d} params  {where}")
    lines = handler_lines()
    print(f"CLI handler lines (run + the private functions it calls): "
          f"max {max(lines.values())}, over 40: {sum(v > 40 for v in lines.values())} of "
          f"{len(lines)}")
    print("  " + ", ".join(f"{k} {v}" for k, v in sorted(lines.items(), key=lambda kv: -kv[1])))
    flags, commands = cli_words()
    rest = [sum(not cli_word_allowed(h) for h in hits) for hits in (flags, commands)]
    print(f"library string literals naming a CLI flag: {len(flags)}, a landscape command: "
          f"{len(commands)}; besides the demo's provenance and report text: {rest[0]}, {rest[1]}")
    circles = import_circles()
    lazy = import_circles(lazy=True)
    print(f"import circles at module load: {len(circles)}; counting imports inside functions: "
          f"{len(lazy)}" + (f" ({', '.join(str(len(c)) for c in lazy)} modules)" if lazy else ""))
    for c in circles:
        print(f"  {len(c)} modules: {', '.join(c)}")
    print(f"CurvatureResult fields: {curvature_fields()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
