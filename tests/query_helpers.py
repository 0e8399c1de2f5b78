"""Shared pieces of the `faceaudit query` tests: a small LFW set from the bundled SFace embeddings (its
"images" are the sample ids' bytes), adapters for the reference server, plans."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from lfw_subset import subset

TOKEN = "sk-test-7f3a9c1e5b2d4f60a8e1c3b5d7f9a2c4"


def small_set(n_multi: int = 8, n_single: int = 6, cap: int = 3):
    ids, subj, sex, race, x = subset(n_multi=n_multi, n_single=n_single, cap=cap, seed=5)
    return ids, subj, sex, race, x


def write_images(folder: Path, ids: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for s in ids:
        (folder / f"{s}.bin").write_bytes(s.encode())
    return folder


def write_samples(path: Path, ids, subj, sex) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sample_id", "subject_id", "sex"])
        w.writerows(zip(ids, subj, sex))
    return path


def write_pair_plan(path: Path, ids, sex, pairs) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["request_id", "probe", "reference", "probe_group", "reference_group"])
        for k, (i, j) in enumerate(pairs):
            w.writerow([k, ids[i], ids[j], sex[i], sex[j]])
    return path


def all_pairs(n: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def cosine(x: np.ndarray, i: int, j: int) -> float:
    """The server's score, computed the same way (float64 dot of unit vectors)."""
    return float(np.dot(x[i], x[j]))


def compare_adapter(
    url: str,
    *,
    response: str,
    rate: float = 2000.0,
    concurrency: int = 8,
    timeout: float = 5.0,
    attempts: int = 8,
    auth: bool = True,
    extra: str = "",
    path: str = "/compare",
    encoding: str = "json",
) -> str:
    auth_block = (
        '[auth]\nheader = "Authorization"\nenv = "FA_TEST_TOKEN"\nprefix = "Bearer "\n' if auth else ""
    )
    if encoding == "json":
        body = 'body = { source = "{probe}", target = "{reference}" }'
    else:
        body = 'encoding = "multipart"\nfiles = { source = "{probe}", target = "{reference}" }'
    return f"""kind = "compare"
{auth_block}
[limits]
rate = {rate}
burst = {concurrency}
concurrency = {concurrency}
timeout = {timeout}
attempts = {attempts}
backoff = 0.01
backoff_max = 0.2

[compare]
method = "POST"
url = "{url}{path}"
{body}

[compare.response]
{response}
error = "/error/code"

[outcomes]
refusal_status = [451]
failure_to_acquire_codes = ["NO_FACE"]
{extra}
"""


def search_adapter(url: str, k: int, *, rate: float = 2000.0, concurrency: int = 8) -> str:
    return f"""kind = "search"
[auth]
header = "Authorization"
env = "FA_TEST_TOKEN"
prefix = "Bearer "

[limits]
rate = {rate}
burst = {concurrency}
concurrency = {concurrency}
timeout = 5.0
attempts = 8
backoff = 0.01
backoff_max = 0.2

[enrol]
url = "{url}/enrol"
body = {{ id = "{{sample_id}}", image = "{{image}}" }}

[enrol.response]
error = "/error/code"

[search]
url = "{url}/search"
body = {{ image = "{{image}}", k = "{{list_length}}" }}
list_length = {k}

[search.response]
candidates = "/candidates"
candidate_id = "id"
score = "score"
error = "/error/code"

[outcomes]
refusal_status = [451]
failure_to_acquire_codes = ["NO_FACE"]
"""
