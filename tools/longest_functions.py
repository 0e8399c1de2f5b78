"""The longest functions in src/ (AST): lines from ``def`` to the last line (decorators excluded), and in
brackets the body's lines (signature and docstring left out).

    python tools/longest_functions.py [--top 10] [--exclude compare/] [--code] [ROOT]

``--code`` ranks by the body's lines.
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
                        total = child.end_lineno - child.lineno + 1
                        body = child.body
                        doc = (
                            body[0].end_lineno - body[0].lineno + 1
                            if body
                            and isinstance(body[0], ast.Expr)
                            and isinstance(body[0].value, ast.Constant)
                            and isinstance(body[0].value.value, str)
                            else 0
                        )
                        # the body: from the first statement after the docstring (the signature left out:
                        # a command's options are declarations, not logic)
                        first = body[1] if doc and len(body) > 1 else body[0]
                        code = 0 if doc and len(body) == 1 else child.end_lineno - first.lineno + 1
                        out.append((total, code, f"{rel}:{child.lineno} {name}"))
                    stack.append((child, name + "."))
                else:
                    stack.append((child, prefix))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", nargs="?", default="src/faceaudit")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--exclude", action="append", default=[], help="skip paths containing this (repeat)")
    ap.add_argument("--code", action="store_true", help="rank by the body's lines")
    args = ap.parse_args()
    rows = [r for r in functions(Path(args.root)) if not any(x in r[2] for x in args.exclude)]
    rows.sort(key=lambda r: (-r[1 if args.code else 0], r[2]))
    for n, code, name in rows[: args.top]:
        print(f"{n:5d} ({code:4d})  {name}")


if __name__ == "__main__":
    main()
