"""Checkpoints: a folder of per-chunk partial results, valid only for the run whose key it records.

``state.json`` records the run's key (inputs, settings and the backend's score identity), its data key
(inputs and settings alone, so that a checkpoint of the same run computed by another kernel is named as
such) and the score identity; ``state.npz`` the capture levels of the pre-pass; ``chunk-NNNNNN.npz`` each
finished chunk, reduced (its tail captures and its per-probe summary partial, not every capture).
Every file is written atomically with a content digest
(:mod:`faceaudit.compare.npzfile`) and checked on resume: a damaged one is a
:class:`~faceaudit.compare.errors.CheckpointError` that says how to restart.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from faceaudit.compare.backends import describe_score_identity
from faceaudit.compare.errors import CheckpointError
from faceaudit.compare.kernel import BlockPartial
from faceaudit.compare.npzfile import NpzDamaged, read_npz, write_npz
from faceaudit.compare.probes import ProbePartial
from faceaudit.scores import SampleIndex

__all__ = ["Checkpoint", "RunKeys", "run_keys", "KEY_VERSION"]

#: bumped when what a checkpoint holds changes: older checkpoints belong to another run
KEY_VERSION = b"capture-state/5"
PARTIAL_FIELDS = ("slots", "pairs", "cap_i", "cap_j", "cap_x", "gen_i", "gen_j", "gen_x", "blocks",
                  *ProbePartial.fields())
STATE_FIELDS = ("cell_level", "topk_x", "mate_x", "mate_hi_x", "keep")


class RunKeys:
    """The checkpoint keys of a run: ``key`` (inputs, settings, score identity) and ``data_key``."""

    def __init__(self, key: str, data_key: str, scores: str) -> None:
        self.key, self.data_key, self.scores = key, data_key, scores


def run_keys(emb: np.ndarray, samples: SampleIndex, settings: dict, score_identity: str) -> RunKeys:
    """Keys over the float32 matrix, the sample table, the settings (but the backend's name) and the
    backend's score identity."""
    h = hashlib.sha256(emb.tobytes())
    h.update(samples.fingerprint().encode())
    h.update(json.dumps({k: v for k, v in settings.items() if k != "backend"}, sort_keys=True).encode())
    data_key = h.copy().hexdigest()
    h.update(score_identity.encode())
    h.update(KEY_VERSION)
    return RunKeys(h.hexdigest(), data_key, score_identity)


def _restart(folder: Path) -> str:
    return f"delete the folder {str(folder)!r} or run without --resume (resume=False) to start again"


class Checkpoint:
    """A run's checkpoint folder (or none: ``folder=None`` keeps nothing)."""

    def __init__(self, folder: str | os.PathLike | None, keys: RunKeys, resume: bool) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.keys = keys
        #: the chunks a resumed run has (their files are read one at a time by :meth:`resumed_chunks`)
        self.resumed: dict[int, Path] = {}
        self.state: dict[str, np.ndarray] | None = None
        if self.folder is None:
            return
        if self.folder.exists() and not self.folder.is_dir():
            raise CheckpointError(
                f"checkpoint {str(self.folder)!r} is a file, not a folder; use another path"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        if resume and (self.folder / "state.json").exists():
            self._check_key()
            self._load()
        else:
            for p in list(self.folder.glob("chunk-*.npz")) + list(self.folder.glob("state.*")):
                p.unlink()

    def _check_key(self) -> None:
        folder, keys = self.folder, self.keys
        try:
            state = json.loads((folder / "state.json").read_text())
            recorded = state["key"]
            was = state.get("scores")
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
            raise CheckpointError(f"checkpoint {str(folder)!r} is damaged (state.json: {exc}); "
                                  f"{_restart(folder)}") from None
        if recorded != keys.key and state.get("data_key") == keys.data_key and was != keys.scores:
            raise CheckpointError(
                f"checkpoint {str(folder)!r} holds this run's chunks with scores from "
                f"{describe_score_identity(str(was))}, but this run computes them with "
                f"{describe_score_identity(str(keys.scores))}: their scores differ in the last bits, so the "
                "chunks cannot be mixed. Resume with the kernel that wrote it, or use another folder or run "
                "without resume")
        if recorded != keys.key:
            raise CheckpointError(
                f"checkpoint {str(folder)!r} belongs to another run (other embeddings, samples or "
                "settings); use another folder or run without resume")

    def _read(self, path: Path, fields: tuple[str, ...]) -> dict[str, np.ndarray]:
        """A checkpoint file's arrays, digest and fields checked, or a CheckpointError."""
        try:
            arrays = read_npz(path)
        except (NpzDamaged, OSError) as exc:
            raise CheckpointError(f"checkpoint file {str(path)!r} is damaged: {exc}; "
                                  f"{_restart(self.folder)}") from None
        missing = [f for f in fields if f not in arrays]
        if missing:
            raise CheckpointError(f"checkpoint file {str(path)!r} lacks {missing}; {_restart(self.folder)}")
        return arrays

    def _load(self) -> None:
        state = self.folder / "state.npz"
        if not state.exists():
            raise CheckpointError(f"checkpoint {str(self.folder)!r} lacks state.npz; {_restart(self.folder)}")
        self.state = {k: v for k, v in self._read(state, STATE_FIELDS).items() if k in STATE_FIELDS}
        for p in sorted(self.folder.glob("chunk-*.npz")):
            try:
                k = int(p.stem.split("-")[1])
            except (IndexError, ValueError):
                raise CheckpointError(f"unexpected file {p.name!r} in checkpoint {str(self.folder)!r}; "
                                      f"{_restart(self.folder)}") from None
            self.resumed[k] = p

    def resumed_chunks(self, n_chunks: int, n_slots: int, n: int):
        """Each resumed chunk as ``(k, BlockPartial, ProbePartial)``, read and checked one at a time."""
        for k, path in sorted(self.resumed.items()):
            arrays = self._read(path, PARTIAL_FIELDS)
            part, probes = BlockPartial.from_arrays(arrays), ProbePartial.from_arrays(arrays)
            self._check_fits(k, part, probes, n_chunks, n_slots, n)
            yield k, part, probes

    def _check_fits(self, k: int, part: BlockPartial, probes: ProbePartial, n_chunks: int, n_slots: int,
                    n: int) -> None:
        """Refuse a chunk that cannot belong to this run's schedule (a digest-valid but foreign file)."""
        if not 0 <= k < n_chunks or part.slots.shape != (n_slots,):
            raise CheckpointError(f"checkpoint chunk {k} of {str(self.folder)!r} does not fit this run's "
                                  f"plan; {_restart(self.folder)}")
        for idx in (part.cap_i, part.cap_j, part.gen_i, part.gen_j, probes.top_p, probes.top_r, probes.band_p,
                    probes.above_p):
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise CheckpointError(f"checkpoint chunk {k} of {str(self.folder)!r} names samples out of "
                                      f"range; {_restart(self.folder)}")

    def save_state(self, arrays: dict[str, np.ndarray]) -> None:
        if self.folder is None:
            return
        write_npz(self.folder / "state.npz", arrays, compress=False, fsync=True)
        tmp = self.folder / "state.json.tmp"
        tmp.write_text(json.dumps({"key": self.keys.key, "data_key": self.keys.data_key,
                                   "scores": self.keys.scores}))
        os.replace(tmp, self.folder / "state.json")

    def save_chunk(self, k: int, part: BlockPartial, probes: ProbePartial) -> None:
        if self.folder is not None:
            write_npz(self.folder / f"chunk-{k:06d}.npz", {**part.to_arrays(), **probes.to_arrays()},
                      compress=False, fsync=True)
