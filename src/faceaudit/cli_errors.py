"""How every faceaudit command ends on a named error: the error's class and message on stderr,
exit status 2, no traceback."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from faceaudit.report.document import terminal_text

__all__ = ["fail"]


def fail(exc: Exception) -> NoReturn:
    # the message quotes ids, labels and paths from input files: their square brackets are text, not markup
    Console(stderr=True).print(f"[bold red]error[/bold red] ({type(exc).__name__}): {terminal_text(exc)}")
    raise typer.Exit(code=2) from None
