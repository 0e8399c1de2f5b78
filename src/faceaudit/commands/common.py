"""What the commands share: parsing comma-separated numbers, loading a .fadist file."""

from __future__ import annotations

from pathlib import Path

from faceaudit.errors import InputError

__all__ = ["floats", "load_distributions", "stored_tail_size"]


def floats(text: str) -> list[float]:
    """``"1e-3, 1e-4"`` -> ``[0.001, 0.0001]``; an :class:`~faceaudit.errors.InputError` naming the text."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{text!r} is not a comma-separated list of numbers") from None


def load_distributions(path: Path):
    from faceaudit.compare.store import load_distributions as load

    return load(path)


def stored_tail_size(dist) -> int:
    """How many non-mated scores per probe the distributions keep: ``compare --top-k`` as recorded (what a
    ``--tail-m`` may use at most); 0 when no per-probe summaries were kept."""
    summary = getattr(dist, "probe_summary", None)
    if summary is None:
        return 0
    return int(summary.k)
