"""Regenerate demo_data/: embeddings of all 13,233 LFW images, with integer ids and group codes only.

    .venv/bin/python bench/make_demo_data.py --model sface
    .venv/bin/python bench/make_demo_data.py --model dlib

Reads ../shared/data/lfw (images, gender lists, race dictionary) and ../shared/models/opencv-zoo.
Writes, per model, ``demo_data/lfw_<model>.parquet``: ``sample_id`` and ``subject_id`` (integers in
sorted name order; names are never written), ``sex``, ``race`` (group codes, "unknown" where LFW has no
label), the acquisition columns and a float16 ``embedding``; plus the LFW View 2 pairs as integer
sample ids (``demo_data/lfw_view2_pairs.csv``) and ``demo_data/README.md``. Embeddings come from the
faceaudit embedding cache when present (the bench/lfw_protocol.py runs fill the same cache).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from faceaudit.data.images import lfw_sample_table  # noqa: E402
from faceaudit.models import DlibResNetEmbedder, SFaceEmbedder, embed_images, read_embeddings  # noqa: E402

SHARED = ROOT.parent / "shared"
LFW = SHARED / "data" / "lfw"
ZOO = SHARED / "models" / "opencv-zoo"


def build_embedder(model: str, *, dlib_detector: str = "hog", dlib_upsample: int = 1):
    if model == "sface":
        return SFaceEmbedder(
            ZOO / "face_recognition_sface_2021dec.onnx", ZOO / "face_detection_yunet_2023mar.onnx"
        )
    if model == "dlib":
        return DlibResNetEmbedder(detector=dlib_detector, upsample=dlib_upsample)
    raise SystemExit(f"unknown model {model!r}")


def view2_pairs_with_ids(lfw: Path, rel_to_id: dict[str, int]) -> pa.Table:
    """LFW View 2 pairs as integer sample ids: fold, sample_a, sample_b, mated."""
    lines = (lfw / "pairs.txt").read_text().split("\n")
    n_folds, n_per = (int(v) for v in lines[0].split())
    rows = [line.split("\t") for line in lines[1:] if line.strip()]
    fold, a, b, mated = [], [], [], []
    for k, r in enumerate(rows):
        if len(r) == 3:
            pa_, pb = (r[0], int(r[1])), (r[0], int(r[2]))
        else:
            pa_, pb = (r[0], int(r[1])), (r[2], int(r[3]))
        fold.append(k // (2 * n_per))
        a.append(rel_to_id[f"{pa_[0]}/{pa_[0]}_{pa_[1]:04d}.jpg"])
        b.append(rel_to_id[f"{pb[0]}/{pb[0]}_{pb[1]:04d}.jpg"])
        mated.append(len(r) == 3)
    assert len(rows) == n_folds * 2 * n_per
    return pa.table(
        {
            "fold": pa.array(fold, pa.int8()),
            "sample_a": pa.array(a, pa.int32()),
            "sample_b": pa.array(b, pa.int32()),
            "mated": mated,
        }
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=["sface", "dlib", "all"], default="all")
    parser.add_argument("--out", type=Path, default=ROOT / "demo_data")
    parser.add_argument("--lfw", type=Path, default=LFW)
    parser.add_argument("--dlib-detector", default="hog")
    parser.add_argument("--dlib-upsample", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument(
        "--readme-only", action="store_true", help="only rewrite README.md from the summaries"
    )
    args = parser.parse_args(argv)
    if args.readme_only:
        write_readme(args.out)
        return
    if not (args.lfw / "images").is_dir():
        raise SystemExit(f"LFW not found at {args.lfw} (expected ../shared/data/lfw)")
    args.out.mkdir(parents=True, exist_ok=True)

    named = lfw_sample_table(args.lfw, ids="names")
    anonymous = lfw_sample_table(args.lfw, ids="integers")
    # the two tables list the same files in the same (sorted) order
    assert named.table.column("path").equals(anonymous.table.column("path"))
    rel_to_id = dict(
        zip(
            named.table.column("sample_id").to_pylist(),
            anonymous.table.column("sample_id").to_pylist(),
            strict=True,
        )
    )
    table = anonymous.table
    table = table.set_column(0, "sample_id", table.column("sample_id").cast(pa.int32()))
    table = table.set_column(1, "subject_id", table.column("subject_id").cast(pa.int32()))
    label_counts = {
        "sex_in_both_lists": named.sex_in_both_lists,
        "sex_in_neither_list": named.sex_in_neither_list,
        "race_labelled_identities": named.race_labelled_identities,
        "race_labelled_images": named.race_labelled_images,
    }
    import pyarrow.csv as pcsv

    pcsv.write_csv(view2_pairs_with_ids(args.lfw, rel_to_id), args.out / "lfw_view2_pairs.csv")

    models = ["sface", "dlib"] if args.model == "all" else [args.model]
    for model in models:
        embedder = build_embedder(model, dlib_detector=args.dlib_detector, dlib_upsample=args.dlib_upsample)
        result = embed_images(table, embedder, workers=args.workers, source="../shared/data/lfw/images")
        result.metadata["labels"] = {
            "sex": "Afifi & Abdelhamed 2019 per-image lists (../shared/data/lfw/gender)",
            "race": "MICA per-identity dictionary (../shared/data/lfw/race); several labels -> mixed",
            **label_counts,
        }
        result.metadata["ids"] = "sample_id: sorted relative path order; subject_id: sorted folder name order"
        path = result.write_parquet(args.out / f"lfw_{model}.parquet", float16=True)
        check = read_embeddings(path)
        assert check.vectors.shape == (table.num_rows, embedder.dim)
        summary = {
            "model": model,
            "file": path.name,
            "bytes": path.stat().st_size,
            "timings": result.timings,
            "fta": result.metadata["fta"]["overall"],
            "by_reason": result.metadata["fta"]["by_reason"],
        }
        print(json.dumps(summary, indent=1))
        (args.out / f"lfw_{model}.summary.json").write_text(
            json.dumps(
                {
                    "model": embedder.describe(),
                    "fta": result.metadata["fta"],
                    "labels": label_counts,
                    "n_samples": table.num_rows,
                    "timings_ms_per_image": result.timings["ms_per_image"],
                },
                indent=1,
                sort_keys=True,
            )
            + "\n"
        )
    write_readme(args.out)


def write_readme(out: Path) -> None:
    """demo_data/README.md from the per-model summaries written next to the Parquet files."""
    lines = [
        "# Demo data: LFW embeddings (no images, no names)",
        "",
        (
            "Generated by `bench/make_demo_data.py` from "
            "`../shared/data/lfw` (deep-funneled LFW, 13,233 images of"
        ),
        "5,749 people) and the model files; do not edit by hand. Regenerate with:",
        "",
        "    .venv/bin/python bench/make_demo_data.py --model sface   # ~5 min on 2 cores",
        "    .venv/bin/python bench/make_demo_data.py --model dlib    # ~20-25 min on 2 cores",
        "",
        "Files:",
        "",
        (
            "- `lfw_<model>.parquet`: one row per LFW image. "
            "`sample_id` (int32, images in sorted relative-path order),"
        ),
        (
            "  `subject_id` (int32, people in sorted name order), "
            "`sex` (male / female / unknown: Afifi & Abdelhamed"
        ),
        (
            "  2019 per-image lists; 5 images listed as both and 3 "
            "in neither are `unknown`), `race` (MICA per-identity"
        ),
        (
            "  labels, 866 of 5,749 people; several labels → "
            "`mixed`; everyone else `unknown`), `acquisition_status`"
        ),
        "  (ok / fallback / failed), `acquisition_reason`, `acquisition_action`, `n_faces`, and `embedding`",
        "  (fixed-size list of float16). The Parquet metadata key `faceaudit` holds the model name, version,",
        "  sha256 of every model file, settings, FTA policy and counts by group. Read with",
        "  `faceaudit.models.read_embeddings(path)`.",
        (
            "- `lfw_view2_pairs.csv`: the 6,000 LFW View 2 pairs "
            "as integer sample ids (`fold`, `sample_a`, `sample_b`,"
        ),
        "  `mated`).",
        "- `lfw_<model>.summary.json`: what the run recorded (model, FTA by group, ms/image).",
        "",
        "LFW: Huang, Ramesh, Berg, Learned-Miller (2007), UMass Amherst tech. report 07-49; deep funneling:",
        "Huang, Mattar, Lee, Learned-Miller (NIPS 2012). Research use; cite the LFW report.",
        "",
        (
            "FTA counts every image without one clean detection "
            "(status fallback or failed); the policy (central-crop:"
        ),
        (
            "no face → central square, several faces → the most "
            "central face) and the counts by sex and race are in"
        ),
        (
            "the Parquet metadata. ms/image covers only the images "
            "embedded in the run that wrote the file (the rest"
        ),
        "came from the embedding cache), on the shared 2-core dev box; bench/RESULTS.md has the timing runs.",
        "",
        "| model | file | size | samples | FTA (fallback / excluded) | by reason | model sha256 | ms/image |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for summary_path in sorted(out.glob("lfw_*.summary.json")):
        summary = json.loads(summary_path.read_text())
        model = summary["model"]
        parquet = out / summary_path.name.replace(".summary.json", ".parquet")
        fta = summary["fta"]["overall"]
        reasons = ", ".join(f"{k} {v}" for k, v in summary["fta"]["by_reason"].items()) or "none"
        hashes = "<br>".join(f"{Path(f['path']).name}: `{f['sha256']}`" for f in model["files"])
        settings = model["settings"]
        keys = ("detector", "upsample", "num_jitters", "padding", "score_threshold", "detect_min_side")
        shown = ", ".join(f"{k} {settings[k]}" for k in keys if k in settings)
        lines.append(
            f"| {model['name']} ({model['version']}; {shown}) | "
            f"`{parquet.name}` | {parquet.stat().st_size / 1e6:.1f} MB | {summary['n_samples']} | "
            f"{fta['fta']} ({fta['fallback']} / {fta['failed']}), policy {model['fta_policy']} | {reasons} | "
            f"{hashes} | {summary['timings_ms_per_image']:.1f} |"
        )
    (out / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
