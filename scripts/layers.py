"""Print vidq's package-to-package imports, its largest modules and its longest functions.

    python scripts/layers.py            # the whole report
    python scripts/layers.py --check    # exit 1 if an import breaks the layering rule,
                                        # or a module is much over 400 lines

The rule (DESIGN.md): arrows point inwards. `media`, `notify`, `outbound`, `storage` and
`db` import nothing from `jobs`; `outbound` (requests to URLs clients name) imports none of
vidq's other packages; `jobs` imports neither `api`, `cli` nor `worker`; `api` imports
nothing from `db` or `media`; nothing below the edges imports `api` or `cli`.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "vidq"

# (importer, imported) pairs that must not occur.
FORBIDDEN = {
    *(
        ("media", p)
        for p in ("jobs", "api", "cli", "worker", "notify", "outbound", "db", "runtime", "service")
    ),
    *(
        ("outbound", p)
        for p in ("jobs", "api", "cli", "worker", "media", "notify", "db", "storage", "service")
    ),
    *(("notify", p) for p in ("jobs", "api", "cli", "worker", "media", "runtime", "service")),
    *(
        ("storage", p)
        for p in ("jobs", "api", "cli", "worker", "media", "notify", "outbound", "db")
    ),
    *(
        ("db", p)
        for p in ("jobs", "api", "cli", "worker", "media", "notify", "outbound", "storage")
    ),
    *(("jobs", p) for p in ("api", "cli", "worker", "runtime", "service")),
    *(("api", p) for p in ("db", "media", "cli", "worker")),
    *(("worker", p) for p in ("api", "cli")),
}


def unit_of(path: Path) -> str:
    """`api` for vidq/api/app.py, `runtime` for vidq/runtime.py."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0].removesuffix(".py")


def imports() -> Counter[tuple[str, str]]:
    """(importer, imported) unit pairs, counted once per importing module."""
    pairs: Counter[tuple[str, str]] = Counter()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        seen = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "vidq" and len(parts) > 1:
                    seen.add(parts[1])
        src = unit_of(path)
        for dst in seen - {src}:
            pairs[(src, dst)] += 1
    return pairs


def largest_modules(count: int = 8) -> list[tuple[int, str]]:
    sizes = [
        (len(p.read_text().splitlines()), str(p.relative_to(PACKAGE.parent)))
        for p in PACKAGE.rglob("*.py")
    ]
    return sorted(sizes, reverse=True)[:count]


def longest_functions(count: int = 8) -> list[tuple[int, str]]:
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                found.append((length, f"{path.relative_to(PACKAGE.parent)}:{node.name}"))
    return sorted(found, reverse=True)[:count]


# "A few hundred lines at most" (STYLE.md): past this, a module holds more than one concept.
MAX_MODULE_LINES = 420


def main() -> int:
    pairs = imports()
    broken = sorted(pair for pair in pairs if pair in FORBIDDEN)
    too_long = [(n, name) for n, name in largest_modules(100) if n > MAX_MODULE_LINES]
    if "--check" not in sys.argv:
        print("imports (modules of the first unit that import the second):")
        for (src, dst), n in sorted(pairs.items()):
            print(f"  {src:>8} -> {dst:<8} {n}")
        print("largest modules (lines):")
        for lines, name in largest_modules():
            print(f"  {lines:5d}  {name}")
        print("longest functions (lines):")
        for lines, name in longest_functions():
            print(f"  {lines:5d}  {name}")
    for src, dst in broken:
        print(f"layering broken: {src} imports {dst}")
    for lines, name in too_long:
        print(f"module too long: {name} has {lines} lines (at most {MAX_MODULE_LINES})")
    return 1 if broken or too_long else 0


if __name__ == "__main__":
    sys.exit(main())
