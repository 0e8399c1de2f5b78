"""The longest functions in src/ (AST: a function's last line - its first line + 1, decorators excluded).

    python tools/longest_functions.py [--top 10] [--exclude compare/] [ROOT]
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def functions(root: Path) -> list[tuple[int, str]]:
    out = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        stack = [(tree, "")]
        while stack:
            node, prefix = stack.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    name = f"{prefix}{child.name}"
                    if not isinstance(child, ast.ClassDef):
                        rel = path.relative_to(root.parent).as_posix()
                        out.append((child.end_lineno - child.lineno + 1, f"{rel}:{child.lineno} {name}"))
                    stack.append((child, name + "."))
                else:
                    stack.append((child, prefix))
    return sorted(out, key=lambda t: (-t[0], t[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", nargs="?", default="src/faceaudit")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--exclude", action="append", default=[], help="skip paths containing this (repeat)")
    args = ap.parse_args()
    rows = [r for r in functions(Path(args.root)) if not any(x in r[1] for x in args.exclude)]
    for n, name in rows[: args.top]:
        print(f"{n:5d}  {name}")


if __name__ == "__main__":
    main()
