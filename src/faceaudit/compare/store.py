"""The ``.fadist`` file: a ScoreDistributions saved as one NPZ (arrays) with JSON metadata inside.

Every array is stored as is (no pickle; ``allow_pickle=False`` on load); the sample table, the
exclusions, the meta (provenance: embedding file sha256, model information, settings, faceaudit
version) and the format version go into a JSON string member ``__json__``. A load gives back a
ScoreDistributions equal (``==``) to the saved one, with its probe summary when it had one.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from faceaudit.compare.summary import ProbeSummary
from faceaudit.errors import InputError
from faceaudit.scores import SampleIndex, ScoreDistributions

__all__ = ["save_distributions", "load_distributions", "FORMAT"]

FORMAT = "faceaudit.fadist/2"
#: formats this version reads: /1 stored one scalar tail cutoff (broadcast to every cell on load)
READABLE = ("faceaudit.fadist/1", FORMAT)
_ARRAYS = ("edges", "impostor_hist", "tail_cutoff", "tail_score", "tail_probe", "tail_reference", "below_max",
           "genuine_score", "genuine_probe", "genuine_reference")


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


def save_distributions(dist: ScoreDistributions, path: str | os.PathLike) -> Path:
    """Write ``dist`` to ``path`` (atomically: a killed write leaves no half file)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {a: np.asarray(getattr(dist, a)) for a in _ARRAYS}
    s = dist.samples
    arrays["sample_ids"], sid_kind = _ids_array(s.sample_ids)
    arrays["subject_ids"], subj_kind = _ids_array(s.subject_ids)
    arrays["subject_of_sample"] = s.subject_of_sample.astype(np.int64)
    arrays["group_of_sample"] = s.group_of_sample.astype(np.int64)
    pairs = dist.impostor_subject_pairs
    if pairs is not None:
        pairs = sp.csr_array(pairs)
        arrays["pairs_data"], arrays["pairs_indices"], arrays["pairs_indptr"] = pairs.data, pairs.indices, pairs.indptr
    if dist.probe_summary is not None:
        for k, v in dist.probe_summary.to_arrays().items():
            arrays[f"summary_{k}"] = np.asarray(v)
    doc = {
        "format": FORMAT,
        "design": dist.design,
        "exclusions": [[k, int(v)] for k, v in dist.exclusions.items()],
        "group_columns": list(s.group_columns),
        "group_labels": [list(label) for label in s.group_labels],
        "sample_id_kind": sid_kind,
        "subject_id_kind": subj_kind,
        "pairs_shape": list(pairs.shape) if pairs is not None else None,
        "meta": _jsonable(dist.meta),
    }
    arrays["__json__"] = np.asarray(json.dumps(doc))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)
    return path


def load_distributions(path: str | os.PathLike) -> ScoreDistributions:
    """Read a ``.fadist`` file written by :func:`save_distributions`."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"distribution file {str(path)!r} does not exist")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read distribution file {str(path)!r}: {exc}") from None
    with z:
        if "__json__" not in z.files:
            raise InputError(f"{str(path)!r} is not a faceaudit .fadist file")
        doc = json.loads(str(z["__json__"]))
        if doc.get("format") not in READABLE:
            raise InputError(f"{str(path)!r} has format {doc.get('format')!r}; this faceaudit reads {READABLE!r}")
        a = {k: z[k] for k in z.files}
    G = len(doc["group_labels"])
    if "tail_cutoff" not in a:  # format /1: one cutoff for every cell
        a["tail_cutoff"] = np.full((G, G), float(doc["tail_cutoff"]))
    a["tail_cutoff"] = np.broadcast_to(np.asarray(a["tail_cutoff"], np.float64), (G, G)).copy()

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
        pairs = sp.csr_array((a["pairs_data"], a["pairs_indices"], a["pairs_indptr"]), shape=tuple(doc["pairs_shape"]))
    summary = None
    if "summary_k" in a:
        summary = ProbeSummary.from_arrays({k[len("summary_"):]: v for k, v in a.items() if k.startswith("summary_")})
    return ScoreDistributions(
        samples=samples, **{k: a[k] for k in _ARRAYS},
        exclusions=Counter({k: v for k, v in doc["exclusions"]}), impostor_subject_pairs=pairs,
        design=doc["design"], meta=doc["meta"], probe_summary=summary)
