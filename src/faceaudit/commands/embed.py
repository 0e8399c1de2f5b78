"""``faceaudit embed``: embed an image set with one embedder and write a Parquet file."""

from __future__ import annotations

import importlib
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from faceaudit.commands.errors import fail
from faceaudit.errors import FaceAuditError
from faceaudit.models.base import DEFAULT_FTA_POLICY, FTA_POLICIES
from faceaudit.options import (
    callback,
    check_channel_values,
    check_nonnegative,
    check_nonnegative_int,
    check_positive_int,
    check_sha256,
    text_kept,
)
from faceaudit.report.document import terminal_text


class Layout(StrEnum):
    subject_folders = "subject-folders"
    manifest = "manifest"


class ModelKind(StrEnum):
    dlib = "dlib"
    sface = "sface"
    onnx = "onnx"
    callable = "callable"


class FtaPolicy(StrEnum):
    exclude = "exclude"
    central_crop = "central-crop"
    largest = "largest"


assert tuple(p.value for p in FtaPolicy) == FTA_POLICIES


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError as exc:
        raise typer.BadParameter(
            f"{what} must be one number or three comma-separated numbers, got {text!r}"
        ) from exc


def _load_callable(target: str):
    module_name, _, attribute = target.partition(":")
    if not attribute:
        raise typer.BadParameter(f"--callable must be 'module:function', got {target!r}")
    obj = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


def embed(
    images: Annotated[
        Path, typer.Option("--images", help="Image folder (subject folders) or the root of manifest paths.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Output Parquet file.")],
    model: Annotated[ModelKind, typer.Option("--model", help="Embedder.")] = ModelKind.sface,
    layout: Annotated[
        Layout, typer.Option("--layout", help="How subjects are given.")
    ] = Layout.subject_folders,
    manifest: Annotated[
        Path | None, typer.Option("--manifest", help="CSV with path, subject_id[, sample_id, attributes...].")
    ] = None,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="CSV of attributes keyed by sample_id or subject_id.")
    ] = None,
    integer_ids: Annotated[
        bool,
        typer.Option("--integer-ids", help="Subject folders: integer sample/subject ids instead of names."),
    ] = False,
    model_path: Annotated[
        Path | None,
        typer.Option("--model-path", help="sface/onnx: model file; dlib: a non-default recogniser."),
    ] = None,
    detector_path: Annotated[
        Path | None,
        typer.Option("--detector-path", help="YuNet ONNX file (sface: required; onnx: for alignment)."),
    ] = None,
    allow_unverified: Annotated[
        bool,
        typer.Option("--allow-unverified", help="Accept model files whose sha256 is not a known release."),
    ] = False,
    input_size: Annotated[
        int,
        typer.Option(
            "--input-size", help="onnx: input side in pixels.", callback=callback(check_positive_int)
        ),
    ] = 112,
    mean: Annotated[
        str,
        typer.Option(
            "--mean",
            help="onnx: per-channel mean (1 or 3 numbers).",
            callback=callback(text_kept(check_channel_values)),
        ),
    ] = "127.5",
    std: Annotated[
        str,
        typer.Option(
            "--std",
            help="onnx: per-channel std (1 or 3 numbers).",
            callback=callback(text_kept(check_channel_values, positive=True)),
        ),
    ] = "127.5",
    channels: Annotated[str, typer.Option("--channels", help="onnx: RGB or BGR.")] = "RGB",
    nchw: Annotated[bool, typer.Option("--nchw/--nhwc", help="onnx: tensor layout.")] = True,
    expected_sha256: Annotated[
        str | None,
        typer.Option(
            "--sha256",
            help="onnx: expected sha256 of the model file (checked).",
            callback=callback(check_sha256),
        ),
    ] = None,
    callable_target: Annotated[
        str | None,
        typer.Option("--callable", help="callable: 'module:function' taking a list of RGB images."),
    ] = None,
    dim: Annotated[
        int | None,
        typer.Option("--dim", help="callable: embedding size.", callback=callback(check_positive_int)),
    ] = None,
    detector: Annotated[str, typer.Option("--detector", help="dlib: hog, cnn or hog+cnn.")] = "hog",
    upsample: Annotated[
        int,
        typer.Option(
            "--upsample", help="dlib: detector upsampling.", callback=callback(check_nonnegative_int)
        ),
    ] = 1,
    jitters: Annotated[
        int, typer.Option("--jitters", help="dlib: num_jitters.", callback=callback(check_positive_int))
    ] = 1,
    padding: Annotated[
        float, typer.Option("--padding", help="dlib: chip padding.", callback=callback(check_nonnegative))
    ] = 0.25,
    fta_policy: Annotated[
        FtaPolicy,
        typer.Option("--fta-policy", help="On failure to acquire: exclude, central-crop or largest."),
    ] = FtaPolicy(DEFAULT_FTA_POLICY),
    float16: Annotated[bool, typer.Option("--float16", help="Store embeddings as float16.")] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", help="Worker count (default: CPU count).", callback=callback(check_positive_int)
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache", help="Embedding cache file (default ~/.cache/faceaudit).")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not read or write the embedding cache.")
    ] = False,
) -> None:
    """Embed face images and record, per sample and per group, what failed to acquire."""
    from rich.console import Console

    from faceaudit.models.pipeline import embed_images

    console = Console(stderr=True)
    policy = fta_policy.value
    try:
        samples, source = _samples(images, layout, manifest, labels, integer_ids, console)
        embedder = _build(
            model,
            model_path=model_path,
            detector_path=detector_path,
            allow_unverified=allow_unverified,
            input_size=input_size,
            mean=mean,
            std=std,
            channels=channels,
            layout="NCHW" if nchw else "NHWC",
            expected_sha256=expected_sha256,
            callable_target=callable_target,
            dim=dim,
            detector=detector,
            upsample=upsample,
            jitters=jitters,
            padding=padding,
            policy=policy,
        )
        cache = False if no_cache else (cache_dir if cache_dir is not None else True)
        result = embed_images(samples, embedder, cache=cache, workers=workers, source=source)
        result.write_parquet(out, float16=float16)
    except FaceAuditError as exc:
        fail(exc)
    _print_summary(console, embedder, result, policy)
    console.print(f"wrote {terminal_text(out)}")


def _samples(
    images: Path, layout: Layout, manifest: Path | None, labels: Path | None, integer_ids: bool, console
):
    """The sample table (from subject folders or a manifest, with any labels joined) and its source."""
    from faceaudit.data.images import join_labels, samples_from_folders, samples_from_manifest

    if manifest is not None or layout is Layout.manifest:
        if manifest is None:
            raise typer.BadParameter("--layout manifest needs --manifest FILE")
        samples = samples_from_manifest(manifest, root=images)
        source = str(manifest)
    else:
        samples = samples_from_folders(images, ids="integers" if integer_ids else "names")
        source = str(images)
    if labels is not None:
        joined = join_labels(samples, labels)
        samples = joined.table
        for attribute, count in joined.unlabelled.items():
            if count:
                console.print(
                    f"[yellow]{count} sample(s) have no {terminal_text(repr(attribute))} label: "
                    "recorded as 'unknown'"
                )
    return samples, source


def _print_summary(console, embedder, result, policy: str) -> None:
    """Speed, cache use and failure to acquire, overall and per group."""
    from rich.table import Table

    fta = result.metadata["fta"]
    overall = fta["overall"]
    ms = result.timings["ms_per_image"]
    speed = "none embedded now" if ms != ms else f"{ms:.1f} ms/image embedded"  # NaN: all from the cache
    console.print(
        f"{terminal_text(embedder.name)} ({embedder.weights_sha256[:12]}…): {overall['n']} samples, "
        f"{result.metadata['n_from_cache']} from cache, {speed}"
    )
    console.print(
        f"failure to acquire: {overall['fta']} of {overall['n']} (policy {policy}: {overall['fallback']} "
        f"fallback, {overall['failed']} excluded); by reason: {terminal_text(fta['by_reason'] or 'none')}"
    )
    for attribute, groups in fta["by_group"].items():
        table = Table(title=f"FTA by {terminal_text(attribute)}")
        for col in (attribute, "n", "FTA", "fallback", "excluded"):
            table.add_column(terminal_text(col))
        for group, c in groups.items():
            table.add_row(
                terminal_text(group), str(c["n"]), str(c["fta"]), str(c["fallback"]), str(c["failed"])
            )
        console.print(table)


def _build(
    model: ModelKind,
    *,
    model_path,
    detector_path,
    allow_unverified,
    input_size,
    mean,
    std,
    channels,
    layout,
    expected_sha256,
    callable_target,
    dim,
    detector,
    upsample,
    jitters,
    padding,
    policy,
):
    if model is ModelKind.sface:
        from faceaudit.models.sface import SFaceEmbedder

        if model_path is None or detector_path is None:
            raise typer.BadParameter(
                "--model sface needs --model-path (SFace .onnx) and --detector-path (YuNet .onnx)"
            )
        return SFaceEmbedder(model_path, detector_path, fta_policy=policy, allow_unverified=allow_unverified)
    if model is ModelKind.dlib:
        from faceaudit.models.dlib_resnet import DlibResNetEmbedder

        return DlibResNetEmbedder(
            detector=detector,
            upsample=upsample,
            num_jitters=jitters,
            padding=padding,
            model_path=model_path,
            fta_policy=policy,
            allow_unverified=allow_unverified,
        )
    if model is ModelKind.onnx:
        from faceaudit.models.onnx import OnnxEmbedder

        if model_path is None:
            raise typer.BadParameter("--model onnx needs --model-path")
        return OnnxEmbedder(
            model_path,
            input_size=input_size,
            mean=_floats(mean, "--mean"),
            std=_floats(std, "--std"),
            channels=channels,
            layout=layout,
            detector_path=detector_path,
            expected_sha256=expected_sha256,
            fta_policy=policy,
            allow_unverified=allow_unverified,
        )
    from faceaudit.models.callable import CallableEmbedder

    if callable_target is None or dim is None:
        raise typer.BadParameter("--model callable needs --callable module:function and --dim")
    return CallableEmbedder(_load_callable(callable_target), dim=dim, fta_policy=policy)
