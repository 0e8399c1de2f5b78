"""Benchmark of `faceaudit query` against the loopback reference server (its own process, bundled LFW
SFace embeddings; images are the sample ids' bytes).

Measures: achieved request rate / allowed rate (the adapter's limit) with concurrency; driver CPU per
request (this process only: the server runs in another); journal bytes per request (extrapolated to
10^5); the time a rerun takes when every response is already journaled (resume after a kill: nothing
sent, the result rewritten) and a rerun after a SIGKILL mid-run.

    PYTHONPATH=src python bench/bench_query.py --requests 10000 --rates 50,200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from query_helpers import TOKEN, compare_adapter, small_set, write_images, write_pair_plan  # noqa: E402

from faceaudit.query.adapter import parse_adapter  # noqa: E402
from faceaudit.query.requests import ImageStore  # noqa: E402
from faceaudit.query.run import run_query  # noqa: E402

SET = {"n_multi": 80, "n_single": 80, "cap": 3}
ENV = {"FA_TEST_TOKEN": TOKEN}


def start_server(**server) -> tuple[subprocess.Popen, str]:
    conf = json.dumps({"set": SET, "server": {"token": TOKEN, **server}})
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "reference_server"), conf],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    port = int(proc.stdout.readline().split()[1])
    return proc, f"http://127.0.0.1:{port}"


def setup(tmp: Path, n: int):
    ids, _subj, sex, _race, _x = small_set(**SET)
    images = write_images(tmp / "images", ids)
    pairs = [(i, j) for i in range(len(ids)) for j in range(i + 1, len(ids))][:n]
    if len(pairs) < n:
        raise SystemExit(f"only {len(pairs)} pairs in the set")
    return images, write_pair_plan(tmp / f"plan{n}.csv", ids, sex, pairs)


def one_run(url, images, plan, tmp, name, *, rate, concurrency, burst):
    text = compare_adapter(url, response='score = "/score"', rate=rate, concurrency=concurrency)
    text = text.replace(f"burst = {concurrency}", f"burst = {burst}")
    c0, t0 = time.process_time(), time.perf_counter()
    res = run_query(
        parse_adapter(text),
        plan,
        ImageStore(images),
        tmp / f"{name}.sqlite",
        tmp / f"{name}.parquet",
        environ=ENV,
        sentinels=0,
        repeats=0,
    )
    return res, time.process_time() - c0, time.perf_counter() - t0


def rate_bench(url, images, tmp, rates, seconds, concurrency):
    rows = []
    for rate in rates:
        for burst in sorted({1, 2, concurrency}):
            n = int(rate * seconds)
            _, plan = setup(tmp, n)
            res, cpu, wall = one_run(
                url, images, plan, tmp, f"rate{rate}_{burst}", rate=rate, concurrency=concurrency, burst=burst
            )
            span = res.stats.last_done - res.stats.first_send
            rows.append(
                {
                    "allowed_per_s": rate,
                    "burst": burst,
                    "concurrency": concurrency,
                    "requests": n,
                    "achieved_per_s": round((n - 1) / span, 2),
                    "ratio": round((n - 1) / span / rate, 3),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def own_parts(images, plan, tmp, n):
    """CPU per request of the driver's own steps, without the HTTP client: key, journal insert, parse."""
    from faceaudit.query.answers import read_answer
    from faceaudit.query.journal import Journal
    from faceaudit.query.plans import plan_jobs, read_plan

    adapter = parse_adapter(compare_adapter("http://127.0.0.1:9", response='score = "/score"'))
    store = ImageStore(images)
    p = read_plan(plan, "compare")
    c0 = time.process_time()
    _, jobs, _, _ = plan_jobs(adapter, p, store, 0, 0)
    c1 = time.process_time()
    journal = Journal(tmp / "own.sqlite", "compare")
    for job in jobs:
        journal.record_response(job.key, "compare", job.description, 200, b'{"score": 0.123456789}', 1)
    c2 = time.process_time()
    stored = journal.responses([j.key for j in jobs])
    for job in jobs:
        read_answer(stored[job.key], adapter.endpoints["compare"], adapter.outcomes)
    c3 = time.process_time()
    return {
        "key_us": round(1e6 * (c1 - c0) / n, 1),
        "journal_insert_us": round(1e6 * (c2 - c1) / n, 1),
        "read_and_parse_us": round(1e6 * (c3 - c2) / n, 1),
    }


def kill_and_resume(images, plan, tmp, url, n, at):
    adapter = tmp / "kill.toml"
    adapter.write_text(compare_adapter(url, response='score = "/score"', rate=1e6, concurrency=8))
    args = [
        sys.executable,
        "-m",
        "faceaudit.query.command",
        "--adapter",
        adapter,
        "--plan",
        plan,
        "--images",
        images,
        "--journal",
        tmp / "kill.sqlite",
        "--out",
        tmp / "kill.parquet",
        "--quiet",
    ]
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(list(map(str, args)), env=env)
    while True:
        time.sleep(0.05)
        try:
            with sqlite3.connect(tmp / "kill.sqlite", timeout=1) as db:
                done = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        except sqlite3.OperationalError:
            continue
        if done >= at:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t0 = time.perf_counter()
    subprocess.run(list(map(str, args)), env=env, check=True)
    return {
        "killed_after": done,
        "rerun_to_completion_s": round(time.perf_counter() - t0, 2),
        "remaining": n - done,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--rates", default="50,200")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rates-only", action="store_true", help="skip the volume, journal and resume runs")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_query_"))
    out = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "load_avg_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    proc, url = start_server()
    try:
        images, plan = setup(tmp, args.requests)
        out["rate"] = rate_bench(
            url, images, tmp, [float(r) for r in args.rates.split(",")], args.seconds, args.concurrency
        )
        if args.rates_only:
            print(json.dumps(out, indent=1))
            return
        out["own_parts_cpu_per_request"] = own_parts(images, plan, tmp, args.requests)
        res, cpu, wall = one_run(
            url, images, plan, tmp, "big", rate=1e6, concurrency=args.concurrency, burst=args.concurrency
        )
        journal = sum(p.stat().st_size for p in tmp.glob("big.sqlite*"))
        out["unlimited"] = {
            "requests": args.requests,
            "wall_s": round(wall, 2),
            "per_s": round(args.requests / wall, 1),
            "driver_cpu_ms_per_request": round(1000 * cpu / args.requests, 3),
        }
        out["journal"] = {
            "bytes": journal,
            "bytes_per_request": round(journal / args.requests, 1),
            "mb_per_1e5_extrapolated": round(journal / args.requests * 1e5 / 2**20, 1),
        }
        _, cpu, wall = one_run(
            url, images, plan, tmp, "big", rate=1e6, concurrency=args.concurrency, burst=args.concurrency
        )
        out["resume_all_journaled"] = {
            "requests": args.requests,
            "wall_s": round(wall, 2),
            "s_per_1e5_extrapolated": round(wall * 1e5 / args.requests, 1),
        }
        out["kill_resume"] = kill_and_resume(images, plan, tmp, url, args.requests, args.requests // 2)
        out["load_avg_end"] = os.getloadavg()
    finally:
        proc.kill()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
