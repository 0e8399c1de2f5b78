"""The ``.fadist`` file: a ScoreDistributions saved as one NPZ (arrays) with JSON metadata inside.

Every array is stored as is (no pickle; ``allow_pickle=False`` on load); the sample table, the
exclusions, the meta (provenance: embedding file sha256, model information, settings, faceaudit
version) and the format version go into a JSON string member ``__json__``. A load gives back a
ScoreDistributions equal (``==``) to the saved one, with its probe summary when it had one.

Format ``/4`` stores the histogram compactly (:class:`~faceaudit.scores.ScoreDistributions`'s rows of
the cells past ``cell_limit`` comparisons, the row index, and the exact scores of the other cells);
``/1``-``/3`` files, with a dense (G, G, B) histogram, are converted on load.

Integrity and determinism (format ``/3`` on). The archive carries a content digest (member ``__digest__``,
:data:`faceaudit.compare.npzfile.DIGEST_RULE`) checked on every load: an empty, truncated, bit-flipped
or foreign file is a :class:`~faceaudit.compare.errors.DistributionsFileError`, never a traceback or a
wrong load. The same distributions give the same bytes: the archive's time stamps are fixed, and what
differs between two runs of the same comparison (wall times, the device, the host) is not in the file
but in a sidecar JSON next to it, ``<file>.run.json`` (from ``meta["run"]``), which names the file's
SHA-256 and content digest it belongs to.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from faceaudit.compare.errors import DistributionsFileError
from faceaudit.compare.npzfile import DIGEST_MEMBER, DIGEST_RULE, NpzDamaged, read_npz, write_npz
from faceaudit.compare.summary import ProbeSummary
from faceaudit.errors import InputError
from faceaudit.scores import SampleIndex, ScoreDistributions, default_cell_limit
from faceaudit.tail_windows import PART_FIELDS, WINDOW_FIELDS, TailWindows

__all__ = ["save_distributions", "load_distributions", "sidecar_path", "FORMAT", "RUN_META_KEY"]

FORMAT = "faceaudit.fadist/4"
#: /5: /4 plus the tail windows of a capped tail (written only by a run that has them, so that every other
#: file stays byte-identical to /4)
FORMAT_WINDOWS = "faceaudit.fadist/5"
#: /6: /5 whose windows hold parts of their bins (``window_lo``, ``window_hi``, ``window_n_in_below``,
#: ``window_n_in_above``: the partition inside the bin, faceaudit/partition.py); written only by such a run
FORMAT_PARTS = "faceaudit.fadist/6"
#: formats this version reads: /1 stored one scalar tail cutoff (broadcast to every cell on load); /1 and
#: /2 carry no content digest (their ZIP members' CRC-32 is all that is checked); /1 to /3 stored a dense
#: (G, G, B) histogram, converted on load (see :func:`_rows_from_dense`)
READABLE = ("faceaudit.fadist/1", "faceaudit.fadist/2", "faceaudit.fadist/3", FORMAT, FORMAT_WINDOWS,
            FORMAT_PARTS)
#: formats that carry a content digest
DIGESTED = ("faceaudit.fadist/3", FORMAT, FORMAT_WINDOWS, FORMAT_PARTS)
#: the key of ``meta`` whose content goes to the sidecar, not into the file
RUN_META_KEY = "run"
#: /4: the histogram rows of the cells that have one, each cell's row (-1: none), and the exact scores
#: below the tail cutoff of the cells without one
ARRAY_FIELDS = ("edges", "hist_rows", "hist_row_of_cell", "tail_cutoff", "tail_score", "tail_probe",
                "tail_reference", "below_max", "genuine_score", "genuine_probe", "genuine_reference",
                "bulk_score", "bulk_probe", "bulk_reference")


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where the run details of the ``.fadist`` file ``path`` go: ``<path>.run.json``."""
    path = Path(path)
    return path.with_name(path.name + ".run.json")


def _ids_array(values: np.ndarray) -> tuple[np.ndarray, str]:
    vals = values.tolist()
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
        return np.asarray(vals, np.int64), "int"
    return np.asarray([str(v) for v in vals], dtype=str), "str"


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, float) and not np.isfinite(x):
        return repr(x)  # 'inf', '-inf', 'nan': JSON has no such numbers
    return x


def _arrays_of(dist: ScoreDistributions) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {a: np.asarray(getattr(dist, a)) for a in ARRAY_FIELDS}
    s = dist.samples
    arrays["sample_ids"], sid_kind = _ids_array(s.sample_ids)
    arrays["subject_ids"], subj_kind = _ids_array(s.subject_ids)
    arrays["subject_of_sample"] = s.subject_of_sample.astype(np.int64)
    arrays["group_of_sample"] = s.group_of_sample.astype(np.int64)
    pairs = dist.impostor_subject_pairs
    if pairs is not None:
        pairs = sp.csr_array(pairs)
        arrays["pairs_data"], arrays["pairs_indices"], arrays["pairs_indptr"] = (
            pairs.data,
            pairs.indices,
            pairs.indptr,
        )
    if dist.probe_summary is not None:
        for k, v in dist.probe_summary.to_arrays().items():
            arrays[f"summary_{k}"] = np.asarray(v)
    if dist.windows is not None:
        for k, v in dist.windows.arrays().items():
            arrays[f"window_{k}"] = np.asarray(v)
    fmt = FORMAT if dist.windows is None else (FORMAT_PARTS if dist.windows.refined else FORMAT_WINDOWS)
    doc = {
        "format": fmt,
        "digest": DIGEST_RULE,
        "design": dist.design,
        "cell_limit": int(dist.cell_limit),
        "exclusions": [[k, int(v)] for k, v in dist.exclusions.items()],
        "group_columns": list(s.group_columns),
        "group_labels": [list(label) for label in s.group_labels],
        "sample_id_kind": sid_kind,
        "subject_id_kind": subj_kind,
        "pairs_shape": list(pairs.shape) if pairs is not None else None,
        "meta": _jsonable({k: v for k, v in dist.meta.items() if k != RUN_META_KEY}),
    }
    arrays["__json__"] = np.asarray(json.dumps(doc, sort_keys=True))
    return arrays


def save_distributions(dist: ScoreDistributions, path: str | os.PathLike) -> Path:
    """Write ``dist`` to ``path`` (atomically: a killed write leaves no half file), deterministically.

    ``dist.meta["run"]`` (run timings, device, host) goes to the sidecar :func:`sidecar_path`, with the
    file's SHA-256 and content digest; without it, a stale sidecar of an earlier file is removed."""
    path = Path(path)
    digest = write_npz(path, _arrays_of(dist))
    side = sidecar_path(path)
    run = dist.meta.get(RUN_META_KEY)
    if run is None:
        side.unlink(missing_ok=True)
        return path
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    tmp = side.with_name(side.name + ".tmp")
    tmp.write_text(json.dumps({"fadist": path.name, "fadist_sha256": sha, "content_digest": digest,
                               **_jsonable(run)}, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, side)
    return path


def _read_checked(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The archive's arrays and its JSON document, or a DistributionsFileError saying what is wrong."""
    where = f"distribution file {str(path)!r}"
    try:
        a = read_npz(path, require_digest=False)
    except NpzDamaged as exc:
        raise DistributionsFileError(f"{where} cannot be used: {exc}") from None
    if "__json__" not in a:
        raise DistributionsFileError(f"{where} is not a faceaudit .fadist file (members: {sorted(a)[:8]})")
    try:
        doc = json.loads(str(a.pop("__json__")))
    except ValueError as exc:
        raise DistributionsFileError(f"{where} has an unreadable header: {exc}") from None
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if fmt not in READABLE:
        raise DistributionsFileError(f"{where} has format {fmt!r}; this faceaudit reads {READABLE!r}")
    if fmt in DIGESTED and DIGEST_MEMBER not in a:
        raise DistributionsFileError(f"{where} lacks its content digest (format {fmt} carries one)")
    a.pop(DIGEST_MEMBER, None)
    return a, doc


def load_distributions(path: str | os.PathLike) -> ScoreDistributions:
    """Read a ``.fadist`` file written by :func:`save_distributions` (its content digest checked)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"distribution file {str(path)!r} does not exist")
    if path.is_dir():
        raise DistributionsFileError(f"{str(path)!r} is a folder, not a .fadist file")
    a, doc = _read_checked(path)
    try:
        return _build(a, doc)
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise DistributionsFileError(
            f"distribution file {str(path)!r} is inconsistent ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None


def _build(a: dict[str, np.ndarray], doc: dict) -> ScoreDistributions:
    G = len(doc["group_labels"])
    if "tail_cutoff" not in a:  # format /1: one cutoff for every cell
        a["tail_cutoff"] = np.full((G, G), float(doc["tail_cutoff"]))
    a["tail_cutoff"] = np.broadcast_to(np.asarray(a["tail_cutoff"], np.float64), (G, G)).copy()
    if "impostor_hist" in a:  # formats /1 to /3
        a.update(_rows_from_dense(a.pop("impostor_hist"), a, np.asarray(a["group_of_sample"], np.int64)))

    def ids(arr: np.ndarray, kind: str) -> np.ndarray:
        return np.asarray([int(v) if kind == "int" else str(v) for v in arr.tolist()], dtype=object)

    samples = SampleIndex(
        sample_ids=ids(a["sample_ids"], doc["sample_id_kind"]),
        subject_of_sample=a["subject_of_sample"].astype(np.intp),
        subject_ids=ids(a["subject_ids"], doc["subject_id_kind"]),
        group_of_sample=a["group_of_sample"].astype(np.intp),
        group_columns=tuple(doc["group_columns"]),
        group_labels=tuple(tuple(label) for label in doc["group_labels"]),
    )
    pairs = None
    if doc["pairs_shape"] is not None:
        pairs = sp.csr_array(
            (a["pairs_data"], a["pairs_indices"], a["pairs_indptr"]), shape=tuple(doc["pairs_shape"])
        )
    summary = None
    if "summary_k" in a:
        summary = ProbeSummary.from_arrays(
            {k[len("summary_") :]: v for k, v in a.items() if k.startswith("summary_")}
        )
    windows = None
    if "window_cell" in a:
        parts = {f: a[f"window_{f}"] for f in PART_FIELDS if doc["format"] == FORMAT_PARTS}
        windows = TailWindows(**{f: a[f"window_{f}"] for f in WINDOW_FIELDS}, **parts)
    dist = ScoreDistributions(
        samples=samples, **{k: a[k] for k in ARRAY_FIELDS}, windows=windows,
        cell_limit=int(doc.get("cell_limit", -1)),
        exclusions=Counter({k: v for k, v in doc["exclusions"]}), impostor_subject_pairs=pairs,
        design=doc["design"], meta=doc["meta"], probe_summary=summary)
    if windows is not None:
        windows.check(dist)
    return dist


def _rows_from_dense(hist: np.ndarray, a: dict[str, np.ndarray], group: np.ndarray) -> dict[str, np.ndarray]:
    """The /4 layout of a /1-/3 file's dense (G, G, B) histogram: a cell keeps its row unless it has at
    most ``B // 4`` comparisons, all in the exact tail (then the tail is all of it and the row is
    derivable). A file made by compare /3 loads equal to a /4 run of it except that a small cell with
    scores below its tail cutoff keeps a row (the file does not hold those scores)."""
    G, _, B = hist.shape
    counts = hist.sum(axis=2).reshape(-1)
    code = group[np.asarray(a["tail_probe"], np.int64)] * G + group[np.asarray(a["tail_reference"], np.int64)]
    in_tail = np.bincount(code, minlength=G * G)
    binned = (counts > default_cell_limit(B)) | (in_tail != counts)
    row = np.full(G * G, -1, np.int64)
    row[binned] = np.arange(int(binned.sum()))
    e = np.empty(0, np.int64)
    return {"hist_rows": hist.reshape(G * G, B)[binned].astype(np.int64),
            "hist_row_of_cell": row.reshape(G, G),
            "bulk_score": np.empty(0), "bulk_probe": e, "bulk_reference": e}
