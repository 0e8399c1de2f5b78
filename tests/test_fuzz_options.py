"""Every option domain: a value is accepted exactly when it lies in the domain (stated here independently
as a plain predicate), and refused with an OptionError naming the option and the value otherwise."""

from __future__ import annotations

import math
import os
from typing import Annotated

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from faceaudit import options as o
from faceaudit.errors import InputError, OptionError

EXAMPLES = int(os.environ.get("FACEAUDIT_FUZZ_EXAMPLES", "0")) or 40

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-10**20, max_value=10**20),
    st.sampled_from([0, 1, -1, 0.0, 1.0, 0.5, 1e-300, 1 - 1e-16, 2, 3, 2.5, 4096, 1 << 24, (1 << 24) + 1]),
)
texts = st.one_of(numbers.map(repr), st.sampled_from(["nan", "inf", "-inf", "", " ", "1e-3", "abc", "[bold]x",
                                                       "0x10", "1_000", "½"]))


def _real(v):
    try:
        return float(str(v).strip()) if not isinstance(v, (int, float)) else float(v)
    except ValueError:
        return None


def _whole(v):
    if isinstance(v, int):
        return v
    try:
        return int(str(v).strip())
    except ValueError:
        pass
    x = _real(v)
    return int(x) if x is not None and math.isfinite(x) and x == int(x) else None


#: check -> the domain, as a predicate over the value as given
DOMAINS = {
    o.check_probability: lambda v: (x := _real(v)) is not None and 0 < x < 1,
    o.check_level: lambda v: (x := _real(v)) is not None and 0 < x < 1,
    o.check_share: lambda v: (x := _real(v)) is not None and 0 <= x <= 1,
    o.check_finite: lambda v: (x := _real(v)) is not None and math.isfinite(x),
    o.check_nonnegative: lambda v: (x := _real(v)) is not None and math.isfinite(x) and x >= 0,
    o.check_size: lambda v: (x := _real(v)) is not None and math.isfinite(x) and x >= 1,
    o.check_positive_int: lambda v: (n := _whole(v)) is not None and n >= 1,
    o.check_nonnegative_int: lambda v: (n := _whole(v)) is not None and n >= 0,
    o.check_seed: lambda v: (n := _whole(v)) is not None and n >= 0,
    o.check_bins: lambda v: (n := _whole(v)) is not None and 2 <= n <= 1 << 24,
}


@pytest.mark.parametrize("check", list(DOMAINS), ids=lambda c: c.__name__)
@settings(max_examples=EXAMPLES, deadline=None)
@given(value=st.one_of(numbers, texts))
def test_check_accepts_exactly_its_domain(check, value):
    inside = DOMAINS[check](value)
    try:
        out = check("--opt", value)
    except OptionError as exc:
        assert not inside, (value, exc)
        assert exc.option == "--opt" and "--opt" in str(exc) and isinstance(exc, InputError)
        return
    assert inside, (value, out)
    assert out == (_whole(value) if isinstance(out, int) else _real(value))


def test_hand_picked_values_from_the_issue():
    for check, bad in [(o.check_probability, float("nan")), (o.check_bins, -5), (o.check_level, 1.5),
                       (o.check_level, -0.5), (o.check_size, -1e6), (o.check_finite, float("nan")),
                       (o.check_probability, 2), (o.check_positive_int, 2.5), (o.check_bins, 10**12)]:
        with pytest.raises(OptionError):
            check("--x", bad)
    assert o.check_probability("--fmr", 1e-5) == 1e-5 and o.check_bins("--bins", "4096") == 4096


def test_checks_that_need_what_the_file_stored():
    assert o.check_tail_m("--tail-m", 20, stored=20) == 20
    with pytest.raises(OptionError, match=r"--tail-m 1000.*at most 20 .*--top-k 1000"):
        o.check_tail_m("--tail-m", 1000, stored=20)
    with pytest.raises(OptionError, match="at least 3"):
        o.check_tail_m("--tail-m", 2, stored=20)
    assert o.check_rank("--rank", 5, stored=21) == 5
    with pytest.raises(OptionError, match="ranks up to 21"):
        o.check_rank("--rank", 50, stored=21)


def test_lists_encodings_hashes_channels_paths_choices(tmp_path):
    assert o.parse_list("--fmr", "1e-3, 1e-4", o.check_probability) == [1e-3, 1e-4]
    assert o.parse_list("--fmr", "", o.check_probability) == []
    for bad in ("1e-3,,1e-4", "1e-3,2", "a,b"):
        with pytest.raises(OptionError, match="--fmr"):
            o.parse_list("--fmr", bad, o.check_probability)
    assert o.check_encoding("--encoding", "UTF8") == "utf-8"
    assert o.check_encoding("--encoding", "latin-1") == "iso8859-1"
    for bad in ("klingon", "base64", "rot13", "zlib"):
        with pytest.raises(OptionError, match="not a text encoding"):
            o.check_encoding("--encoding", bad)
    assert o.check_sha256("--sha256", "A" * 64) == "a" * 64
    with pytest.raises(OptionError):
        o.check_sha256("--sha256", "abc")
    assert o.check_channel_values("--mean", "127.5") == [127.5]
    for bad, kw in (("1,2", {}), ("nan", {}), ("1,0,1", {"positive": True})):
        with pytest.raises(OptionError):
            o.check_channel_values("--std", bad, **kw)
    with pytest.raises(OptionError, match="does not exist"):
        o.check_output_path("--json", tmp_path / "nope" / "r.json")
    with pytest.raises(OptionError, match="is a folder"):
        o.check_output_path("--json", tmp_path)
    assert o.check_output_path("--json", tmp_path / "r.json") == tmp_path / "r.json"
    with pytest.raises(OptionError, match=r"one of \['highest', 'lowest'\]"):
        o.check_choice("--convention", "middle", ["highest", "lowest"])


def test_every_listed_option_names_a_check_that_refuses_garbage():
    for command, option, check, _ in o.OPTION_DOMAINS:
        with pytest.raises(OptionError) as info:
            check(option, "not-a-value")
        assert option in str(info.value), (command, option)


def _app():
    app = typer.Typer()

    @app.command()
    def run(
        fmr: Annotated[list[float], typer.Option("--fmr", callback=o.callback(o.check_probability))] = [],  # noqa: B006
        level: Annotated[float, typer.Option(callback=o.callback(o.check_level))] = 0.95,
        bins: Annotated[int, typer.Option(callback=o.callback(o.check_bins))] = 4096,
        tail_m: Annotated[int, typer.Option(callback=o.callback(o.check_tail_m, stored=20))] = 20,
    ) -> None:
        typer.echo(f"ok {fmr} {level} {bins} {tail_m}")

    @app.command()
    def other() -> None:  # a second command, so that `run` is a sub-command as in faceaudit
        pass

    return app


@pytest.mark.parametrize("args", [["--fmr", "nan"], ["--fmr", "1e-3", "--fmr", "2"], ["--level", "1.5"],
                                  ["--level", "-0.5"], ["--bins", "-5"], ["--tail-m", "1000"]])
def test_callback_ends_in_exit_2_with_the_error_name(args):
    r = CliRunner().invoke(_app(), ["run", *args])
    assert r.exit_code == 2, r.output
    assert "OptionError" in r.output and args[-2] in r.output and "Traceback" not in r.output


def test_callback_passes_good_values():
    args = ["run", "--fmr", "1e-3", "--fmr", "1e-4", "--level", "0.9", "--bins", "64"]
    r = CliRunner().invoke(_app(), args)
    assert r.exit_code == 0, r.output
    assert "ok [0.001, 0.0001] 0.9 64 20" in r.output
