"""`faceaudit compare --backend dask` on a 2-worker LocalCluster against `--backend numpy` on the same set:
are the two .fadist files byte-identical, and how much memory does each process of the cluster take?

    .venv/bin/python bench/bench_dask.py --n 200000                                   # numpy, then dask
    .venv/bin/python bench/bench_dask.py --n 200000 --numpy-fadist /tmp/faceaudit_topk/200000/k20.fadist

The set is `bench_topk.py`'s (synthetic 128-d unit vectors, 4 images per subject, 4 groups, written once
under ``--data``). Each run is one `python -m faceaudit.cli compare ... --backend B --quiet --top-k K`
under `/usr/bin/time -v` (wall time, peak RSS of the CLI process). While it runs, every process under it
is sampled every ``--every`` seconds: ``VmHWM`` (the kernel's peak resident set of that process) and
``VmRSS`` from ``/proc/<pid>/status``; a process's peak is the last VmHWM read before it ended (growth in
its last interval can be missed). Roles: the CLI process (it also runs the LocalCluster's scheduler and
nannies, in its event loop), the dask workers (``multiprocessing.spawn`` children), multiprocessing's
resource tracker. Also reported: the largest sum of VmRSS over the whole tree at one sample. With
``--numpy-fadist`` an existing numpy file of the same set and options is the reference (e.g. the
default run of `bench_topk.py`, just before); otherwise numpy runs first. The files are compared byte
for byte and by SHA-256 and content digest, then member by member (the decompressed ``.npy`` bytes of
each array, with a SHA-256 of each) and the JSON metadata key by key: the file records the backend that
made it (``meta.settings.backend``), so two backends' files differ in that member (and hence in the
file's SHA-256 and content digest) even when every array is identical. The JSON goes to
``bench/out/bench_dask_<n>.json``.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_topk import CLI_ENV, ROOT, _git_head, fadist_facts, make_set  # noqa: E402


def _status(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmHWM", "VmRSS")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def _role(cmdline: list[str], depth: int) -> str:
    text = " ".join(cmdline)
    if "spawn_main" in text or "forkserver" in text:
        return "dask worker"
    if "resource_tracker" in text:
        return "resource tracker"
    return "CLI (client, scheduler, nannies)" if depth == 1 else "other"


class TreeSampler(threading.Thread):
    """VmHWM/VmRSS of every process under ``root`` every ``every`` seconds until stopped."""

    def __init__(self, root: int, every: float) -> None:
        super().__init__(daemon=True)
        self.root, self.every = root, every
        self.procs: dict[int, dict] = {}
        self.max_tree_rss_kb = 0
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        top = psutil.Process(self.root)
        while not self.stop.is_set():
            try:
                kids = top.children(recursive=True)
            except psutil.Error:
                break
            total = 0
            for p in kids:
                try:
                    st = _status(p.pid)
                    if p.pid not in self.procs:
                        depth, q = 1, p.parent()
                        while q is not None and q.pid != self.root:
                            depth, q = depth + 1, q.parent()
                        self.procs[p.pid] = {"pid": p.pid, "role": _role(p.cmdline(), depth), "depth": depth,
                                             "vm_hwm_kb": 0, "max_rss_kb": 0}
                except (OSError, psutil.Error):
                    continue
                rec = self.procs[p.pid]
                rec["vm_hwm_kb"] = max(rec["vm_hwm_kb"], st.get("VmHWM", 0))
                rec["max_rss_kb"] = max(rec["max_rss_kb"], st.get("VmRSS", 0))
                total += st.get("VmRSS", 0)
            self.max_tree_rss_kb = max(self.max_tree_rss_kb, total)
            self.samples += 1
            self.stop.wait(self.every)


def _member_digests(path: Path) -> dict[str, str]:
    """SHA-256 of each ZIP member's decompressed bytes (the arrays' .npy bytes), read in pieces."""
    out = {}
    with zipfile.ZipFile(path) as z:
        for name in sorted(z.namelist()):
            h = hashlib.sha256()
            with z.open(name) as f:
                while piece := f.read(1 << 24):
                    h.update(piece)
            out[name] = h.hexdigest()
    return out


def _json_diff(a, b, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _json_diff(a.get(k), b.get(k), f"{where}.{k}")]
    return [] if a == b else [f"{where}: {json.dumps(a)[:120]} != {json.dumps(b)[:120]}"]


def compare_files(ref: Path, out: Path) -> dict:
    """Byte-for-byte, then per member; the metadata's differing keys."""
    import numpy as np

    ma, mb = _member_digests(ref), _member_digests(out)
    differing = sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))
    res = {"byte_identical": filecmp.cmp(ref, out, shallow=False), "members": len(ma),
           "differing_members": differing,
           "arrays_identical": not [k for k in differing if k not in ("__json__.npy", "__digest__.npy")]}
    if "__json__.npy" in differing:
        with zipfile.ZipFile(ref) as za, zipfile.ZipFile(out) as zb:
            ja = json.loads(str(np.lib.format.read_array(za.open("__json__.npy"), allow_pickle=False)))
            jb = json.loads(str(np.lib.format.read_array(zb.open("__json__.npy"), allow_pickle=False)))
        res["json_differences"] = _json_diff(ja, jb)
    return res


def run(emb: Path, table: Path, out: Path, backend: str, top_k: int, workers: int, every: float) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "faceaudit.cli", "compare", "--embeddings", str(emb),
           "--samples", str(table), "--group", "grp", "--out", str(out), "--backend", backend, "--quiet",
           "--top-k", str(top_k)]
    if backend == "dask":
        cmd += ["--workers", str(workers)]
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CLI_ENV)
    sampler = TreeSampler(proc.pid, every)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    row = {"backend": backend, "command": " ".join(cmd[2:]), "rc": proc.returncode, "wall_s": round(wall, 1),
           "time_v_max_rss_gb": round(int(peak.group(1)) / 2**20, 3) if peak else None,
           "load_avg_before": load_before, "load_avg_after": os.getloadavg(), "samples": sampler.samples,
           "max_tree_rss_gb": round(sampler.max_tree_rss_kb / 2**20, 3),
           "processes": [{**r, "vm_hwm_gb": round(r["vm_hwm_kb"] / 2**20, 3)}
                         for r in sampler.procs.values()]}
    cpu = [re.search(rf"{k} time \(seconds\): ([\d.]+)", stderr) for k in ("User", "System")]
    if all(cpu):  # CPU seconds of the process and its waited-for children: less sensitive to the load
        row.update(user_s=float(cpu[0].group(1)), system_s=float(cpu[1].group(1)))
    if proc.returncode != 0:
        row["error"] = stderr.strip()[-2000:]
        return row
    side = out.with_name(out.name + ".run.json")
    if side.exists():
        meta = json.loads(side.read_text())
        row["timing_s"] = meta.get("timing_s")
        row["device"] = meta.get("device")
    row.update(fadist_facts(out))
    row.pop("arrays", None)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--top-k", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--every", type=float, default=0.5, help="sampling interval of /proc (seconds)")
    ap.add_argument("--data", type=Path, default=Path("/tmp/faceaudit_topk"))
    ap.add_argument("--numpy-fadist", type=Path, help="an existing numpy .fadist of the same set and options")
    ap.add_argument("--keep", action="store_true", help="keep the dask .fadist (default: delete it after)")
    a = ap.parse_args()
    emb, table = make_set(a.n, a.data / str(a.n))
    folder = a.data / str(a.n)
    doc = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "git_head": _git_head(), "args": {
        k: str(v) for k, v in vars(a).items()}, "runs": []}
    ref = a.numpy_fadist
    if ref is None:
        ref = folder / f"numpy_k{a.top_k}.fadist"
        doc["runs"].append(run(emb, table, ref, "numpy", a.top_k, a.workers, a.every))
        print(json.dumps(doc["runs"][-1]), flush=True)
    else:
        doc["numpy_reference"] = {"path": str(ref), **fadist_facts(ref)}
        doc["numpy_reference"].pop("arrays", None)
    out = folder / f"dask{a.workers}_k{a.top_k}.fadist"
    doc["runs"].append(run(emb, table, out, "dask", a.top_k, a.workers, a.every))
    print(json.dumps(doc["runs"][-1]), flush=True)
    if out.exists() and ref.exists():
        doc.update(compare_files(ref, out))
        ref_facts = doc.get("numpy_reference") or doc["runs"][0]
        doc["same_sha256"] = ref_facts["sha256"] == doc["runs"][-1]["sha256"]
        doc["same_content_digest"] = ref_facts["content_digest"] == doc["runs"][-1]["content_digest"]
    print(json.dumps({k: doc.get(k) for k in ("byte_identical", "same_sha256", "same_content_digest",
                                               "arrays_identical", "differing_members", "json_differences")}))
    if not a.keep:
        out.unlink(missing_ok=True)
    dest = ROOT / "bench" / "out" / f"bench_dask_{a.n}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(doc, indent=1))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
