"""The faceaudit command line: assembles the commands of :mod:`faceaudit.commands` into one typer app."""

from __future__ import annotations

import typer

from faceaudit.commands.audit import audit
from faceaudit.commands.demo import demo
from faceaudit.commands.embed import embed
from faceaudit.commands.identify import identify
from faceaudit.commands.plan import plan
from faceaudit.commands.report import report
from faceaudit.commands.scenario import scenario
from faceaudit.compare.command import compare
from faceaudit.evidence.command import evidence
from faceaudit.query.command import query

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Measure face-recognition systems: false match and non-match rates, for whom, with intervals.",
)

app.command("audit")(audit)
app.command("demo")(demo)
app.command("compare")(compare)
app.command("embed")(embed)
app.command("report")(report)
app.command("identify")(identify)
app.command("scenario")(scenario)
app.command("evidence")(evidence)
app.command("query")(query)
app.command("plan")(plan)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
