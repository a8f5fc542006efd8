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
    return 0


if __name__ == "__main__":
    sys.exit(main())
