"""Peak resident memory per phase of ``faceaudit compare`` (Linux only; for bench/RESULTS.md).

Runs the CLI in-process with its phases wrapped: at each boundary the process's VmHWM (peak RSS since the
last reset) is logged and reset (``/proc/self/clear_refs`` = 5), so each line is that phase's own peak.
Phases: setup (inputs, plan), pre_pass, main_pass, assembly (split further: sum of the partials, tail,
probe summaries; under a partition inside the bin also its split passes and the window capture pass),
store write, exit. Usage: ``python bench/memphase.py compare --embeddings ... --out ...``
(the CLI's own arguments); the lines go to stderr, prefixed ``memphase``.
"""

from __future__ import annotations

import atexit
import importlib
import sys
import time

from faceaudit.compare import assembly, engine, store


def _status() -> dict[str, int]:
    with open("/proc/self/status") as f:
        return {k: int(v.split()[0]) for k, v in (ln.split(":", 1) for ln in f)
                if k in ("VmHWM", "VmRSS")}


_last = [time.perf_counter()]


def mark(phase: str) -> None:
    """Log the peak RSS since the previous mark (kB -> MB) and reset it."""
    s = _status()
    now = time.perf_counter()
    print(f"memphase {phase:<22} peak {s['VmHWM'] / 1024:8.1f} MB  rss {s['VmRSS'] / 1024:8.1f} MB"
          f"  {now - _last[0]:7.1f} s", file=sys.stderr, flush=True)
    _last[0] = now
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _wrap(mod, name: str, label: str, before: str | None = None):
    fn = getattr(mod, name)

    def wrapped(*a, **kw):
        if before == "report":
            report_captures()
        elif before:
            mark(before)
        out = fn(*a, **kw)
        mark(label)
        return out
    setattr(mod, name, wrapped)


_kept = {"chunks": 0, "in": 0, "kept": 0, "max_in": 0}


def _count_captures() -> None:
    """Per chunk: the captures a chunk brings and those reduce_chunk keeps (bytes, all fields)."""
    fn = engine.reduce_chunk

    def wrapped(run, part, acc):
        size = sum(getattr(part, f).nbytes for f in ("cap_i", "cap_j", "cap_x", "gen_i", "gen_j", "gen_x"))
        part, probes = fn(run, part, acc)
        kept = sum(getattr(part, f).nbytes for f in ("cap_i", "cap_j", "cap_x", "gen_i", "gen_j", "gen_x"))
        _kept.update(chunks=_kept["chunks"] + 1, kept=_kept["kept"] + kept, max_in=max(_kept["max_in"], size))
        _kept["in"] += size
        return part, probes
    engine.reduce_chunk = wrapped


def report_captures() -> None:
    print(f"memphase captures: {_kept['chunks']} chunks, {_kept['in'] / 2**20:.1f} MiB captured in all "
          f"(largest chunk {_kept['max_in'] / 2**20:.1f} MiB), {_kept['kept'] / 2**20:.1f} MiB kept after "
          "reduce_chunk", file=sys.stderr, flush=True)


def install() -> None:
    _count_captures()
    _wrap(engine, "_capture_levels", "pre_pass", before="setup")
    _wrap(engine, "_main_pass", "main_pass")
    _wrap(engine, "assemble", "assembly", before="report")
    _wrap(assembly, "assemble_tail", "assembly.tail", before="assembly.sum_partials")
    _wrap(assembly, "assemble_capped", "assembly.capped", before="assembly.tail_until_capped")
    _wrap(store, "save_distributions", "store_write", before="after_compare")
    try:  # the partition inside the bin (absent before commit 7b4353b)
        refine = importlib.import_module("faceaudit.compare.refine")
    except ImportError:
        refine = None
    if refine is not None:
        _wrap(refine, "refine", "refine.split_passes", before="assembly.refined_tail")
        _wrap(refine, "capture_windows", "refine.capture_windows")
    atexit.register(mark, "exit")


if __name__ == "__main__":
    install()
    from faceaudit.cli import app
    sys.argv = ["faceaudit", *sys.argv[1:]]
    app()
