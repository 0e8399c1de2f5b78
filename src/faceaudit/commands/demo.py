"""``faceaudit demo``: a real audit on the bundled data, projected onto an operation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from faceaudit.commands.errors import fail
from faceaudit.errors import FaceAuditError
from faceaudit.options import callback, check_nonnegative, check_size

__all__ = ["demo"]


def demo(
    out: Annotated[Path, typer.Option(help="folder for the demo's outputs")] = Path("out/demo"),
    model: Annotated[
        str, typer.Option(help="bundled embeddings: sface (OpenCV Zoo) or dlib (ResNet)")
    ] = "sface",
    searches: Annotated[
        float,
        typer.Option(help="the scenario's searches (0: no scenario)", callback=callback(check_nonnegative)),
    ] = 1e5,
    gallery: Annotated[
        float, typer.Option(help="the scenario's gallery size", callback=callback(check_size))
    ] = 1e7,
) -> None:
    """Run a real audit on the bundled data, project it onto an operation, and print the summary."""
    from faceaudit.demo import run_demo

    try:
        run_demo(out, model=model, scenario_searches=searches, scenario_gallery=gallery)
    except FaceAuditError as exc:
        fail(exc)
