"""Every command refuses an out-of-domain option value before any work: exit 2, the error's name
(OptionError) and the option on stderr, no traceback, no output file written."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from faceaudit.cli import app
from faceaudit.options import OPTION_DOMAINS


def _base(command: str, tmp) -> list[str]:
    """The command's required options, naming files that do not exist: a check that ran after reading
    them would fail with another error than OptionError."""
    missing = str(tmp / "missing.csv")
    return {
        "audit": ["audit", "--scores", missing, "--samples", missing],
        "identify": ["identify", "--distributions", str(tmp / "missing.fadist")],
        "scenario": [
            "scenario",
            "--distributions",
            str(tmp / "missing.fadist"),
            "--searches",
            "10",
            "--gallery",
            "100",
        ],
        "compare": [
            "compare",
            "--embeddings",
            str(tmp / "e.npy"),
            "--samples",
            missing,
            "--out",
            str(tmp / "out.fadist"),
        ],
        "demo": ["demo", "--out", str(tmp / "demo")],
        "embed": ["embed", "--images", str(tmp / "images"), "--out", str(tmp / "out.parquet")],
        "plan": ["plan", "--samples", missing, "--out", str(tmp / "plan.csv")],
        "evidence": ["evidence", "--calibration", str(tmp / "missing.fadist")],
        "query": ["query", "--adapter", missing, "--plan", missing, "--images", str(tmp / "images"),
                  "--journal", str(tmp / "run.sqlite"), "--out", str(tmp / "out.parquet")],
    }[command]


BAD = [
    ("audit", "--fmr", "nan"),
    ("audit", "--fmr", "1.5"),
    ("audit", "--level", "1.5"),
    ("audit", "--bins", "-5"),
    ("audit", "--max-tail", "-1"),
    ("audit", "--bootstrap", "-1"),
    ("audit", "--seed", "-3"),
    ("audit", "--encoding", "rot13"),
    ("audit", "--min-subjects", "0"),
    ("audit", "--fmr-resolution", "0"),
    ("audit", "--fnmr-resolution", "nan"),
    ("audit", "--threshold", "nan"),
    ("audit", "--censored-below", "inf"),
    ("audit", "--det-out", "/"),  # a folder
    ("audit", "--det-out", "/no-such-folder-of-faceaudit/det.parquet"),
    ("audit", "--det-out", "/proc/det.parquet"),  # a folder that takes no new file, even for root
    ("identify", "--extrapolate", "-1e6"),
    ("identify", "--extrapolate", "1e5,,1e7"),
    ("identify", "--threshold", "nan"),
    ("identify", "--threshold", "0.4,inf"),
    ("identify", "--fmr", "2"),
    ("identify", "--rank", "0"),
    ("identify", "--rank", "2.5"),
    ("identify", "--tail-m", "0"),
    ("identify", "--level", "0"),
    ("identify", "--bootstrap", "-1"),
    ("identify", "--list-length", "0"),
    ("identify", "--candidate-threshold", "nan"),
    ("identify", "--seed", "-1"),
    ("scenario", "--searches", "-1"),
    ("scenario", "--gallery", "0.5"),
    ("scenario", "--threshold", "inf"),
    ("scenario", "--max-false-matches", "-2"),
    ("scenario", "--mated-share", "1.5"),
    ("scenario", "--level", "1"),
    ("scenario", "--tail-m", "0"),
    ("scenario", "--bootstrap", "-1"),
    ("scenario", "--seed", "-7"),
    ("compare", "--fmr", "0"),
    ("compare", "--bins", "1"),
    ("compare", "--block", "0"),
    ("compare", "--top-k", "-1"),
    ("compare", "--max-tail", "-1"),
    ("compare", "--workers", "0"),
    ("compare", "--encoding", "no-such-codec"),
    ("demo", "--searches", "-1"),
    ("demo", "--gallery", "0"),
    ("embed", "--input-size", "0"),
    ("embed", "--mean", "1,2"),
    ("embed", "--std", "0"),
    ("embed", "--sha256", "xyz"),
    ("embed", "--dim", "0"),
    ("embed", "--upsample", "-1"),
    ("embed", "--jitters", "0"),
    ("embed", "--padding", "-0.1"),
    ("embed", "--workers", "0"),
    ("plan", "--claim-fmr", "0"),
    ("plan", "--claim-fnmr", "1"),
    ("plan", "--power", "1"),
    ("plan", "--alternative", "nan"),
    ("plan", "--level", "2"),
    ("plan", "--mated-per-subject", "0"),
    ("plan", "--rate", "0"),
    ("plan", "--seed", "-1"),
    ("evidence", "--folds", "0"),
    ("evidence", "--bootstrap", "-1"),
    ("evidence", "--seed", "-1"),  # reached numpy's seeding as a traceback before
    ("evidence", "--level", "1"),
    ("evidence", "--strong", "inf"),
    ("query", "--sentinels", "-1"),
    ("query", "--sentinel-repeats", "-2"),
]


@pytest.mark.parametrize(("command", "option", "value"), BAD, ids=[f"{c} {o} {v}" for c, o, v in BAD])
def test_out_of_domain_value_exits_2_with_option_error(tmp_path, command, option, value):
    # the bad option first: click runs the callbacks in the order the options were given
    args = _base(command, tmp_path)
    if option in args:  # a required option given twice: the last value would win
        i = args.index(option)
        del args[i : i + 2]
    r = CliRunner().invoke(app, [args[0], option, value, *args[1:]])
    assert r.exit_code == 2, r.output
    assert "OptionError" in r.output and option in r.output, r.output
    assert "Traceback" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "work started before the option was checked"


def test_every_listed_domain_is_checked_on_the_command_line():
    """Every (command, option) that options.OPTION_DOMAINS lists has a refusal case above, so that a
    command whose option loses its callback fails here."""
    tested = {(c, o) for c, o, _ in BAD}
    listed = {(c, o) for c, o, _, _ in OPTION_DOMAINS}
    assert listed <= tested, sorted(listed - tested)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            [
                "audit",
                "--fmr",
                "1e-3",
                "--level",
                "0.9",
                "--bins",
                "64",
                "--encoding",
                "UTF8",
                "--min-subjects",
                "2",
            ],
            "give --scores and --samples",
        ),
        (
            ["identify", "--threshold", "0.4, 0.5", "--rank", "1,10", "--extrapolate", "1e5"],
            "give --distributions",
        ),
    ],
)
def test_good_values_pass_the_callbacks(args, needle):
    """In-domain values reach the command body (which then names the missing input)."""
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and needle in r.output and "OptionError" not in r.output, r.output


@pytest.mark.parametrize("command", ["identify", "scenario"])
def test_tail_m_above_what_compare_kept_is_refused_not_clamped(tmp_path, command):
    """--tail-m larger than compare's --top-k cannot take effect: exit 2 naming both figures (it used to be
    used as the stored size while the JSON said the larger one)."""
    import numpy as np

    from faceaudit.compare import compare_embeddings
    from faceaudit.compare.store import save_distributions
    from faceaudit.scores import SampleIndex

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 8))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    samples = SampleIndex.from_columns([f"s{i}" for i in range(40)], [f"p{i // 2}" for i in range(40)])
    path = tmp_path / "d.fadist"
    save_distributions(compare_embeddings(emb.astype(np.float32), samples, top_k=7, progress=False), path)
    extra = ["--threshold", "0.5"] if command == "identify" else ["--searches", "10", "--gallery", "100",
                                                                  "--threshold", "0.5", "--bootstrap", "0"]
    base = [command, "--distributions", str(path), *extra]
    res = CliRunner().invoke(app, [*base, "--tail-m", "8"])
    assert res.exit_code == 2 and "OptionError" in res.output and "at most 7" in res.output, res.output
    assert "Traceback" not in res.output
    ok = CliRunner().invoke(app, [*base, "--tail-m", "7", "--bootstrap", "0"] if command == "identify"
                            else [*base, "--tail-m", "7"])
    assert ok.exit_code == 0, ok.output
