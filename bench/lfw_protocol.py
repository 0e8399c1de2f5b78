"""LFW View 2 (unrestricted, labelled outside data) 10-fold verification accuracy of faceaudit's embedders.

    .venv/bin/python bench/lfw_protocol.py --variants sface dlib-hog1 dlib-hog1+cnn --append

Protocol (Huang et al. 2007, LFW technical report; View 2 ``pairs.txt``): 10 folds of 300 mated and
300 non-mated pairs; for each fold the threshold that maximises accuracy on the other 9 folds is
applied to it; the figure is the mean of the 10 fold accuracies, ± their sample standard deviation
(ddof=1; the LFW README's sigma-hat; its standard error is that / sqrt(10)). Never the best fold.

Embeddings come through ``embed_images`` and its cache, so a rerun after ``bench/make_demo_data.py``
(same models, same settings) costs no inference. ms/image is measured separately, without the cache,
on the first ``--timing-images`` images of the pairs, with the executor ``embed_images`` picks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from faceaudit.data.images import samples_from_folders  # noqa: E402
from faceaudit.models import DlibResNetEmbedder, SFaceEmbedder, embed_images  # noqa: E402

SHARED = ROOT.parent / "shared"
LFW = SHARED / "data" / "lfw"
ZOO = SHARED / "models" / "opencv-zoo"

VARIANTS = {
    # name: (factory, description)
    "sface": (
        lambda: SFaceEmbedder(
            ZOO / "face_recognition_sface_2021dec.onnx", ZOO / "face_detection_yunet_2023mar.onnx"
        ),
        "SFace 2021dec + YuNet 2023mar (score 0.9; detection on the image enlarged to 500 px), alignCrop",
    ),
    "sface-native": (
        lambda: SFaceEmbedder(
            ZOO / "face_recognition_sface_2021dec.onnx",
            ZOO / "face_detection_yunet_2023mar.onnx",
            detect_min_side=0,
        ),
        "SFace 2021dec + YuNet 2023mar (score 0.9; detection at the native 250 px), alignCrop",
    ),
    "dlib-hog0": (
        lambda: DlibResNetEmbedder(detector="hog", upsample=0),
        "dlib, HOG upsample 0, padding 0.25, 1 jitter",
    ),
    "dlib-hog1": (
        lambda: DlibResNetEmbedder(detector="hog", upsample=1),
        "dlib, HOG upsample 1, padding 0.25, 1 jitter",
    ),
    "dlib-cnn1": (lambda: DlibResNetEmbedder(detector="cnn", upsample=1), "dlib, CNN (MMOD) upsample 1"),
}
# composed variants: the base run, with the images it found no face in re-embedded by the second embedder
COMPOSED = {
    "dlib-hog1+cnn": (
        "dlib-hog1",
        lambda: DlibResNetEmbedder(detector="hog+cnn", upsample=1),
        "dlib, HOG upsample 1; CNN (MMOD) only where HOG found no face",
    ),
    "dlib-hog0+cnn": (
        "dlib-hog0",
        lambda: DlibResNetEmbedder(detector="hog+cnn", upsample=0),
        "dlib, HOG upsample 0; CNN (MMOD) upsample 0 only where HOG found no face",
    ),
}


def read_pairs(path: Path) -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
    """fold, image a, image b (paths relative to images/), mated."""
    lines = path.read_text().split("\n")
    n_folds, n_per = (int(v) for v in lines[0].split())
    rows = [line.split("\t") for line in lines[1:] if line.strip()]
    if len(rows) != 2 * n_folds * n_per:
        raise SystemExit(f"{path}: expected {2 * n_folds * n_per} pairs, found {len(rows)}")

    def rel(name: str, k: str) -> str:
        return f"{name}/{name}_{int(k):04d}.jpg"

    a, b, mated = [], [], []
    for r in rows:
        if len(r) == 3:
            a.append(rel(r[0], r[1]))
            b.append(rel(r[0], r[2]))
            mated.append(True)
        else:
            a.append(rel(r[0], r[1]))
            b.append(rel(r[2], r[3]))
            mated.append(False)
    fold = np.arange(len(rows)) // (2 * n_per)
    return fold, a, b, np.array(mated)


def best_threshold(scores: np.ndarray, mated: np.ndarray) -> float:
    """The threshold (score >= t means "same person") that maximises accuracy on these pairs."""
    order = np.argsort(scores, kind="stable")
    s, m = scores[order], mated[order]
    n = len(s)
    # a threshold just below s[k] accepts k..n-1: correct = non-mated below k + mated from k on
    non_mated_below = np.concatenate([[0], np.cumsum(~m)])
    mated_from = m.sum() - np.concatenate([[0], np.cumsum(m)])
    correct = (non_mated_below + mated_from).astype(np.int64)
    valid = np.ones(n + 1, dtype=bool)
    valid[1:n] = s[1:] > s[:-1]  # a threshold cannot split tied scores
    correct[~valid] = -1
    k = int(np.argmax(correct))
    if k == 0:
        return -np.inf
    if k == n:
        return np.inf
    return float((s[k - 1] + s[k]) / 2)


def ten_fold_accuracy(scores: np.ndarray, mated: np.ndarray, fold: np.ndarray) -> np.ndarray:
    accuracies = []
    for f in np.unique(fold):
        train, test = fold != f, fold == f
        t = best_threshold(scores[train], mated[train])
        accuracies.append(np.mean((scores[test] >= t) == mated[test]))
    return np.array(accuracies)


def pair_scores(vectors: np.ndarray, ia: np.ndarray, ib: np.ndarray, metric: str) -> np.ndarray:
    a, b = vectors[ia].astype(np.float64), vectors[ib].astype(np.float64)
    if metric == "cosine":
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        return np.sum(a * b, axis=1)
    return -np.linalg.norm(a - b, axis=1)  # euclidean distance, negated: higher = more alike


@dataclass
class Row:
    variant: str
    description: str
    metric: str
    mean: float
    std: float
    fta: int
    fta_by_reason: dict
    n_images: int
    ms_per_image: float
    executor: str


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def time_embedder(embedder, samples: pa.Table, n: int) -> tuple[float, str]:
    subset = samples.slice(0, min(n, samples.num_rows))
    result = embed_images(subset, embedder, cache=False, progress=False)
    return result.timings["ms_per_image"], result.metadata["executor"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["sface", "dlib-hog1", "dlib-hog1+cnn"],
        choices=[*VARIANTS, *COMPOSED],
    )
    parser.add_argument("--lfw", type=Path, default=LFW)
    parser.add_argument("--timing-images", type=int, default=200, help="0: skip the timing run")
    parser.add_argument("--append", action="store_true", help="append the table to bench/RESULTS.md")
    args = parser.parse_args(argv)
    if not (args.lfw / "pairs.txt").is_file():
        raise SystemExit(f"LFW View 2 pairs not found at {args.lfw / 'pairs.txt'}")

    fold, rel_a, rel_b, mated = read_pairs(args.lfw / "pairs.txt")
    everything = samples_from_folders(args.lfw / "images", ids="names")
    in_pairs = sorted(set(rel_a) | set(rel_b))
    position = {r: i for i, r in enumerate(everything.column("sample_id").to_pylist())}
    samples = everything.take(pa.array([position[r] for r in in_pairs]))
    index = {r: i for i, r in enumerate(in_pairs)}
    ia = np.array([index[r] for r in rel_a])
    ib = np.array([index[r] for r in rel_b])
    print(
        f"LFW View 2: {len(mated)} pairs ({mated.sum()} mated) over {len(in_pairs)} images, "
        f"{fold.max() + 1} folds"
    )

    runs: dict[str, tuple] = {}

    def run(name: str):
        if name not in runs:
            factory, description = VARIANTS[name]
            embedder = factory()
            result = embed_images(samples, embedder, source=str(args.lfw / "images"))
            runs[name] = (embedder, result, description)
        return runs[name]

    rows: list[Row] = []
    for variant in args.variants:
        if variant in COMPOSED:
            base_name, factory, description = COMPOSED[variant]
            base_embedder, base, _ = run(base_name)
            reasons = base.table.column("acquisition_reason").to_pylist()
            missed = np.array(["no_face" in r for r in reasons])
            vectors = base.vectors.copy()
            statuses = np.array(base.table.column("acquisition_status").to_pylist(), dtype=object)
            reasons = np.array(reasons, dtype=object)
            embedder = factory()
            if missed.any():
                redo = embed_images(
                    samples.filter(pa.array(missed)), embedder, source=str(args.lfw / "images")
                )
                vectors[missed] = redo.vectors
                statuses[missed] = redo.table.column("acquisition_status").to_pylist()
                reasons[missed] = redo.table.column("acquisition_reason").to_pylist()
            ms, executor = float("nan"), "-"
        else:
            embedder, result, description = run(variant)
            vectors = result.vectors
            statuses = np.array(result.table.column("acquisition_status").to_pylist(), dtype=object)
            reasons = np.array(result.table.column("acquisition_reason").to_pylist(), dtype=object)
            ms, executor = (
                time_embedder(embedder, samples, args.timing_images)
                if args.timing_images
                else (float("nan"), "-")
            )
        by_reason: dict[str, int] = {}
        for r in reasons:
            for part in filter(None, str(r).split(";")):
                by_reason[part.split(":")[0]] = by_reason.get(part.split(":")[0], 0) + 1
        fta = int(np.sum(statuses != "ok"))
        metrics = ["cosine", "euclidean"] if variant.startswith("dlib") else ["cosine"]
        for metric in metrics:
            scores = pair_scores(vectors, ia, ib, metric)
            if np.isnan(scores).any():
                raise SystemExit(
                    f"{variant}: {np.isnan(scores).sum()} pair(s) without a score (FTA policy exclude?)"
                )
            acc = ten_fold_accuracy(scores, mated, fold)
            rows.append(
                Row(
                    variant,
                    description,
                    metric,
                    100 * acc.mean(),
                    100 * acc.std(ddof=1),
                    fta,
                    by_reason,
                    len(in_pairs),
                    ms,
                    executor,
                )
            )
            print(
                f"{variant:16s} {metric:9s} {100 * acc.mean():.2f}% ± {100 * acc.std(ddof=1):.2f}  "
                f"FTA {fta}/{len(in_pairs)} {by_reason}  {ms:.1f} ms/image ({executor})",
                flush=True,
            )

    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [
        "",
        f"## LFW View 2, 10-fold verification accuracy ({when})",
        "",
        f"`bench/lfw_protocol.py --variants {' '.join(args.variants)}` on {machine}. Deep-funneled LFW "
        f"(`../shared/data/lfw`), {len(mated)} pairs over {len(in_pairs)} images. "
        "Threshold chosen on 9 folds, "
        "accuracy on the 10th; mean ± sample std (ddof=1) of the 10 folds. FTA = images with no single clean "
        "detection (policy central-crop: no face → central crop; several faces → the most central face), "
        "counted, never dropped. ms/image: embedding only (decode + detect + align + network), no cache, "
        f"first {args.timing_images} images.",
        "",
        "| variant | settings | similarity | accuracy | FTA (of images) | FTA by reason | ms/image |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        reasons_text = ", ".join(f"{k} {v}" for k, v in sorted(r.fta_by_reason.items())) or "none"
        ms_text = "—" if np.isnan(r.ms_per_image) else f"{r.ms_per_image:.1f} ({r.executor})"
        lines.append(
            f"| {r.variant} | {r.description} | {r.metric} | {r.mean:.2f}% ± {r.std:.2f} | "
            f"{r.fta} / {r.n_images} | {reasons_text} | {ms_text} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.append:
        results = ROOT / "bench" / "RESULTS.md"
        if not results.exists():
            results.write_text("# Benchmark results\n")
        with results.open("a") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
