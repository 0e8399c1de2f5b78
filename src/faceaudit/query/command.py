"""``faceaudit query``: drive a vendor's face-matching HTTP API over a request plan.

Mount with ``app.command("query")(query)`` in :mod:`faceaudit.cli`; ``python -m faceaudit.query.command``
runs it alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from faceaudit.options import callback, check_nonnegative_int

__all__ = ["query", "format_summary"]


def _manifest(path: Path | None) -> dict[str, str] | None:
    if path is None:
        return None
    from faceaudit.data.tables import read_table
    from faceaudit.query.errors import ImageError

    t = read_table(path, text=("sample_id", "path"), what="image manifest", error=ImageError,
                   ids=("sample_id",))
    ids, paths = t.column("sample_id").to_pylist(), t.column("path").to_pylist()
    if None in ids or None in paths or len(set(ids)) != len(ids):
        raise ImageError(f"image manifest {str(path)!r} has empty or repeated sample ids or paths")
    return dict(zip(ids, paths))


def format_summary(meta: dict[str, Any], out: Path) -> list[str]:
    lines = [
        f"wrote {out} ({meta['kind']}); outcomes: "
        + ", ".join(f"{k} {v}" for k, v in meta["outcomes"].items())
    ]
    for op, groups in meta["outcomes_by_group"].items():
        for g, counts in groups.items():
            if set(counts) - {"answered"}:
                lines.append(f"  {op} {g}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    lines += [f"FLAG {f['code']}: {f['params']}" for f in meta["flags"]]
    if meta["kind"] == "compare":
        level = meta["censored_below"]
        extra = f" --censored-below {level}" if level is not None else ""
        lines.append(f"next: faceaudit audit-results --scores {out} --samples SAMPLES{extra} --group ...")
    else:
        gallery = out.with_suffix("").as_posix() + ".gallery.parquet"
        lines.append(
            f"next: faceaudit identify-candidates --candidates {out} --gallery {gallery} "
            f"--samples SAMPLES --list-length {meta['list_length']} --group ..."
        )
    if meta["outcomes"].get("refused") or meta["outcomes"].get("failure_to_acquire"):
        lines.append(
            "refused and failed requests are not in the results (not no-matches): see *.outcomes.parquet"
        )
    return lines


def query(
    adapter: Annotated[Path, typer.Option(help="the vendor adapter (TOML)")],
    plan: Annotated[Path, typer.Option(help="compare: probe, reference[, ...]; search: sample_id, role")],
    images: Annotated[Path, typer.Option(help="folder holding the images the plan names")],
    journal: Annotated[Path, typer.Option(help="SQLite journal (created, or resumed)")],
    out: Annotated[
        Path, typer.Option(help="results (.parquet): what audit-results / identify-candidates read")
    ],
    manifest: Annotated[Path | None, typer.Option(help="sample_id, path (relative to --images)")] = None,
    samples: Annotated[
        Path | None, typer.Option(help="the auditor's sample table: every plan id must be in it")
    ] = None,
    sentinels: Annotated[
        int,
        typer.Option(help="plan requests repeated through the run", callback=callback(check_nonnegative_int)),
    ] = 2,
    sentinel_repeats: Annotated[
        int, typer.Option(help="times each sentinel is repeated", callback=callback(check_nonnegative_int))
    ] = 3,
    quiet: Annotated[bool, typer.Option("--quiet", help="no terminal output")] = False,
) -> None:
    """Send the plan's requests to a vendor's API (rate-limited, retried, journaled, resumable)."""
    from faceaudit.commands.errors import fail
    from faceaudit.errors import FaceAuditError
    from faceaudit.query.adapter import load_adapter
    from faceaudit.query.requests import ImageStore
    from faceaudit.query.run import run_query

    try:
        spec = load_adapter(adapter)
        store = ImageStore(images, _manifest(manifest))
        ids = None
        if samples is not None:
            from faceaudit.data.tables import read_sample_table

            ids = {str(s) for s in read_sample_table(samples).sample_ids.tolist()}
        result = run_query(
            spec, plan, store, journal, out, sentinels=sentinels, repeats=sentinel_repeats, sample_ids=ids
        )
    except FaceAuditError as exc:
        fail(exc)
    if not quiet:
        typer.echo("\n".join(format_summary(result.provenance, result.out)))


def main() -> None:  # pragma: no cover - exercised through a subprocess in the tests
    app = typer.Typer(add_completion=False)
    app.command()(query)
    app()


if __name__ == "__main__":
    main()
