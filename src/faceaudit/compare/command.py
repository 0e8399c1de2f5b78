"""``faceaudit compare``: embeddings + sample table -> a ``.fadist`` file of ScoreDistributions."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from faceaudit.commands.errors import fail
from faceaudit.options import (
    callback,
    check_bins,
    check_encoding,
    check_nonnegative_int,
    check_positive_int,
    check_probability,
)

__all__ = ["compare"]


def compare(
    embeddings: Annotated[
        Path,
        typer.Option(
            help="embedding file aligned to the samples: Parquet (sample_id + embedding list), NPY or NPZ"
        ),
    ],
    samples: Annotated[Path, typer.Option(help="sample table: sample_id, subject_id, attribute columns")],
    out: Annotated[Path, typer.Option(help="where to write the distributions (.fadist)")],
    group: Annotated[
        list[str], typer.Option("--group", help="attribute column to break results down by (repeat)")
    ] = [],  # noqa: B006
    backend: Annotated[
        str, typer.Option(help="auto | numpy | torch | dask (auto: torch when it sees a GPU, else numpy)")
    ] = "auto",
    metric: Annotated[
        str, typer.Option(help="cosine (unit-norm embeddings) or euclidean (scores are negated distances)")
    ] = "cosine",
    normalize: Annotated[
        bool,
        typer.Option(
            "--normalize", help="scale embeddings to unit norm instead of refusing non-normalised ones"
        ),
    ] = False,
    fmr: Annotated[
        list[float],
        typer.Option(
            "--fmr",
            help="target FMR whose threshold must be exact (repeat); default 1e-3, 1e-4, 1e-5",
            callback=callback(check_probability),
        ),
    ] = [],  # noqa: B006
    bins: Annotated[
        int,
        typer.Option(
            help="histogram bins per group pair over the score range", callback=callback(check_bins)
        ),
    ] = 4096,
    block: Annotated[
        int, typer.Option(help="block side of the all-pairs schedule", callback=callback(check_positive_int))
    ] = 1024,
    top_k: Annotated[
        int,
        typer.Option(
            help="non-mated scores kept per probe for 1:N (the tail model uses 20)",
            callback=callback(check_nonnegative_int),
        ),
    ] = 20,
    max_tail: Annotated[
        int,
        typer.Option(
            help="the most scores the contiguous exact tail keeps (~24 bytes each); past it, each answer "
            "below the tail is kept as the exact scores of its histogram bin (same answers, no FMR "
            "bootstrap there); where those bins hold more, further passes keep only the part of each "
            "bin that holds its answer",
            callback=callback(check_nonnegative_int),
        ),
    ] = 1 << 23,
    precision: Annotated[
        str, typer.Option(help="fp32, or bf16 (torch only: scores move by up to ~8e-3, typically ~1e-3)")
    ] = "fp32",
    device: Annotated[
        str | None, typer.Option(help="torch device, e.g. cuda:0 (default: cuda when present)")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="dask scheduler address (default: a LocalCluster)")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(help="LocalCluster workers for --backend dask", callback=callback(check_positive_int)),
    ] = 2,
    checkpoint: Annotated[
        Path | None, typer.Option(help="checkpoint folder (default: OUT.ckpt, removed on success)")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="continue a killed run from its checkpoints (bit-identical result)"),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
    encoding: Annotated[
        str,
        typer.Option(
            help="text encoding of a CSV sample table (utf-8, latin-1, cp1252, utf-16...)",
            callback=callback(check_encoding),
        ),
    ] = "utf-8",
) -> None:
    """Compare every pair of an evaluation set's embeddings into score distributions."""
    from rich.console import Console

    from faceaudit.compare.engine import compare_embeddings
    from faceaudit.compare.io import read_embeddings
    from faceaudit.compare.store import save_distributions, sidecar_path
    from faceaudit.data.tables import file_sha256, read_sample_table
    from faceaudit.errors import FaceAuditError

    err = Console(stderr=True)
    ckpt = checkpoint if checkpoint is not None else out.with_name(out.name + ".ckpt")
    try:
        index = read_sample_table(samples, group, encoding=encoding)
        emb = read_embeddings(embeddings, index)
        meta = {**emb.provenance(), "samples_file": str(samples), "samples_sha256": file_sha256(samples)}
        dist = compare_embeddings(
            emb.matrix,
            index,
            backend=backend,
            metric=metric,
            normalize=normalize,
            bins=bins,
            block=block,
            top_k=top_k,
            max_tail=max_tail,
            fmr_targets=fmr or (1e-3, 1e-4, 1e-5),
            precision=precision,
            device=device,
            scheduler=scheduler,
            n_workers=workers,
            checkpoint_dir=ckpt,
            resume=resume,
            progress=not quiet,
            meta=meta,
        )
        save_distributions(dist, out)
    except FaceAuditError as exc:
        fail(exc)
    if checkpoint is None:
        shutil.rmtree(ckpt, ignore_errors=True)
    n = index.n_samples
    err.print(
        f"wrote {out}: {n * (n - 1) // 2:,} pairs ({dist.n_mated:,} mated, {dist.n_nonmated:,} non-mated), "
        f"tail of {dist.tail_score.size:,} scores (per-cell cutoffs {float(dist.tail_cutoff.min()):.6g} to "
        f"{float(dist.tail_cutoff.max()):.6g}), "
        + (f"{dist.windows.n_scores:,} more in {dist.windows.cell.size:,} answer bins below it (tail capped "
           f"at --max-tail {max_tail:,}), " if dist.windows is not None else "")
        + f"{dist.meta['run']['timing_s']['total']:.2f} s on {dist.meta['run']['device']} "
        f"(run details: {sidecar_path(out).name})",
        markup=False,
        highlight=False,
    )
