"""A longer fuzzing run of the readers and the command line (tests/test_fuzz_readers.py).

Runs the hypothesis tests again and again with fresh seeds until the time budget is spent, each run with
``FACEAUDIT_FUZZ_EXAMPLES`` examples per test, and tallies the inputs tried by class: named error,
exclusion (loaded, with NaN/inf or self-comparisons counted out), correct (loaded, counts and audit equal
to the oracle), crash (any other exception, or a number that differs from the oracle).

    .venv/bin/python bench/fuzz_run.py --minutes 10 --examples 2000

Prints a Markdown table (for bench/RESULTS.md) and writes the raw log to bench/out/fuzz_log.jsonl.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(seed: int, examples: int, log: Path, timeout: float) -> tuple[int, str]:
    env = dict(os.environ, FACEAUDIT_FUZZ_EXAMPLES=str(examples), FACEAUDIT_FUZZ_LOG=str(log),
               PYTHONPATH=str(ROOT / "src"))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--hypothesis-seed={seed}",
           "tests/test_fuzz_readers.py", "-k", "contract or cli_exit"]
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timeout"
    return p.returncode, p.stdout[-3000:]


def tally(log: Path) -> tuple[collections.Counter, collections.Counter, list[str]]:
    by_class: collections.Counter = collections.Counter()
    by_error: collections.Counter = collections.Counter()
    crashes = []
    for line in log.read_text().splitlines():
        row = json.loads(line)
        by_class[(row["where"], row["class"])] += 1
        if row["class"] == "named error":
            by_error[row["detail"].split(":")[0].split("(")[-1].rstrip(")")] += 1
        if row["class"] == "crash":
            crashes.append(row["detail"])
    return by_class, by_error, crashes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--examples", type=int, default=2000, help="examples per test per run")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    log = out / "fuzz_log.jsonl"
    log.write_text("")
    start, seed, runs, failed = time.time(), args.seed, 0, []
    while time.time() - start < args.minutes * 60:
        left = args.minutes * 60 - (time.time() - start)
        rc, tail = run_once(seed, args.examples, log, timeout=max(left, 60))
        runs += 1
        if rc not in (0, -1):
            failed.append((seed, tail))
        seed += 1
    minutes = (time.time() - start) / 60
    by_class, by_error, crashes = tally(log)
    machine = (f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
               f"python {platform.python_version()}")
    print(f"fuzz run: {runs} pytest runs (seeds {args.seed}..{seed - 1}), {minutes:.1f} min, "
          f"{args.examples} examples per test per run; {machine}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("\n| where | named error | exclusion | correct | crash (incl. silent wrong) | total |")
    print("|---|---|---|---|---|---|")
    for where in ("api", "cli"):
        row = [by_class[(where, c)] for c in ("named error", "exclusion", "correct", "crash")]
        print(f"| {where} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    print("\nnamed errors by class:", dict(by_error.most_common()))
    print(f"failed pytest runs: {len(failed)}; distinct crash details: {len(set(crashes))}")
    for detail in sorted(set(crashes))[:20]:
        print("  CRASH", detail[:300])
    for seed, tail in failed[:3]:
        print(f"--- seed {seed} ---\n{tail}")


if __name__ == "__main__":
    main()
