"""Validators for the domain of every command-line option, raising :class:`OptionError`.

Each ``check_*`` takes the option's name as the user types it (``"--fmr"``) and its value, and returns
the value (normalised where that is its job) or raises :class:`~faceaudit.errors.OptionError` naming the
option, the value and the rule. :func:`callback` adapts one to a typer callback, so that a bad value ends
in exit 2 with the error's name before any work starts::

    fmr: Annotated[list[float], typer.Option("--fmr", callback=callback(check_probability))] = []

Options whose bound depends on an input (``--tail-m`` and ``--rank`` against what a ``.fadist`` file
stored) have checks that take that bound (:func:`check_tail_m`, :func:`check_rank`); the command calls
them once it has read the file. :data:`OPTION_DOMAINS` lists every option of every command with its
check, for the documentation and the tests.
"""

from __future__ import annotations

import codecs
import math
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from faceaudit.errors import OptionError

__all__ = [
    "OPTION_DOMAINS",
    "MAX_BINS",
    "callback",
    "check_bins",
    "check_channel_values",
    "check_choice",
    "check_count",
    "check_encoding",
    "check_finite",
    "check_level",
    "check_nonnegative",
    "check_nonnegative_int",
    "check_output_path",
    "check_writable_file",
    "check_positive_int",
    "check_probability",
    "check_rank",
    "check_seed",
    "check_share",
    "check_sha256",
    "check_size",
    "check_tail_m",
    "parse_list",
    "check_positive",
    "comma_list",
    "text_kept",
]

#: bins per group pair: more would cost G^2 x bins x 8 bytes for no resolution a score has
MAX_BINS = 1 << 24


def _number(option: str, value: Any) -> float:
    """A real number (bool is not a number here: typer never gives one, a caller passing one is wrong)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(str(value).strip())
        except ValueError:
            raise OptionError(option, value, "not a number") from None
    return float(value)


def _integer(option: str, value: Any) -> int:
    """A whole number; ``"2.5"`` or 2.5 is refused rather than truncated to 2."""
    if isinstance(value, bool):
        raise OptionError(option, value, "not a whole number")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())  # exact for long digit strings, which a float would round
    except ValueError:
        pass
    x = _number(option, value)
    if not math.isfinite(x) or x != int(x):
        raise OptionError(option, value, "not a whole number")
    return int(x)


def check_probability(option: str, value: Any) -> float:
    """A rate such as a target FMR: a number strictly between 0 and 1."""
    x = _number(option, value)
    if not 0.0 < x < 1.0:  # False for NaN as well
        raise OptionError(option, value, "must be a probability strictly between 0 and 1 (e.g. 1e-4)")
    return x


def check_level(option: str, value: Any) -> float:
    """An interval level: strictly between 0 and 1 (0.95 for 95 %)."""
    x = _number(option, value)
    if not 0.0 < x < 1.0:
        raise OptionError(option, value, "an interval level must lie strictly between 0 and 1 (e.g. 0.95)")
    return x


def check_share(option: str, value: Any) -> float:
    """A share of a population: between 0 and 1, both included."""
    x = _number(option, value)
    if not 0.0 <= x <= 1.0:
        raise OptionError(option, value, "a share must lie in [0, 1]")
    return x


def check_finite(option: str, value: Any) -> float:
    """A threshold: any finite number (NaN and infinities would make every comparison false or true)."""
    x = _number(option, value)
    if not math.isfinite(x):
        raise OptionError(option, value, "must be a finite number")
    return x


def check_nonnegative(option: str, value: Any) -> float:
    """A finite number >= 0 (searches, a false-match budget, a padding)."""
    x = _number(option, value)
    if not (math.isfinite(x) and x >= 0):
        raise OptionError(option, value, "must be a finite number >= 0")
    return x


def check_positive(option: str, value: Any) -> float:
    """A finite number > 0 (a request rate)."""
    x = _number(option, value)
    if not (math.isfinite(x) and x > 0):
        raise OptionError(option, value, "must be a finite number > 0")
    return x


def check_size(option: str, value: Any) -> float:
    """A size such as a gallery of N faces: a finite number >= 1."""
    x = _number(option, value)
    if not (math.isfinite(x) and x >= 1):
        raise OptionError(option, value, "must be a finite number >= 1")
    return x


def check_positive_int(option: str, value: Any) -> int:
    """A count that must be at least 1 (block side, workers, jitters, input size, a rank)."""
    n = _integer(option, value)
    if n < 1:
        raise OptionError(option, value, "must be a whole number >= 1")
    return n


def check_nonnegative_int(option: str, value: Any) -> int:
    """A count that may be 0 (bootstrap replicates, 0 disables; top-k; upsampling)."""
    n = _integer(option, value)
    if n < 0:
        raise OptionError(option, value, "must be a whole number >= 0")
    return n


check_count = check_nonnegative_int


def check_seed(option: str, value: Any) -> int:
    """A random seed: a whole number >= 0 (what numpy's generators accept)."""
    n = _integer(option, value)
    if n < 0:
        raise OptionError(option, value, "a seed must be a whole number >= 0")
    return n


def check_bins(option: str, value: Any) -> int:
    """Histogram bins per group pair: 2 to MAX_BINS (a power of two takes the fused GPU path)."""
    n = _integer(option, value)
    if not 2 <= n <= MAX_BINS:
        raise OptionError(option, value, f"bins must be a whole number from 2 to {MAX_BINS} (e.g. 4096)")
    return n


def check_choice(option: str, value: Any, choices: Iterable[str]) -> str:
    choices = list(choices)
    if value not in choices:
        raise OptionError(option, value, f"must be one of {choices}")
    return str(value)


def check_encoding(option: str, encoding: Any) -> str:
    """A text encoding Python knows; returns its canonical name (``"UTF8"`` -> ``"utf-8"``)."""
    try:
        info = codecs.lookup(str(encoding))
    except LookupError:
        info = None
    # bytes-to-bytes codecs (base64, zlib) and str-to-str ones (rot13) are not text encodings
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise OptionError(option, encoding, "not a text encoding (e.g. utf-8, latin-1, cp1252, utf-16)")
    return info.name


def check_sha256(option: str, value: Any) -> str:
    text = str(value).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise OptionError(option, value, "a sha256 is 64 hexadecimal digits")
    return text


def check_channel_values(option: str, value: Any, *, positive: bool = False) -> list[float]:
    """``--mean``/``--std``: 1 or 3 comma-separated finite numbers (``--std``: each > 0)."""
    values = parse_list(option, value, check_finite)
    if len(values) not in (1, 3):
        raise OptionError(option, value, "give 1 or 3 numbers (one per channel)")
    if positive and any(v <= 0 for v in values):
        raise OptionError(option, value, "a standard deviation must be > 0")
    return values


def check_output_path(option: str, value: Any) -> Path:
    """A file to write: its folder exists and it is not itself a folder."""
    path = Path(value)
    if path.is_dir():
        raise OptionError(option, str(value), "is a folder; give a file name")
    if not path.parent.is_dir():
        raise OptionError(option, str(value), f"its folder {str(path.parent)!r} does not exist")
    return path


def check_writable_file(option: str, value: Any) -> Path:
    """A file to write later, after long work: :func:`check_output_path`, and its folder takes a new file
    now (tried with a nameless temporary file, which leaves nothing behind; permission bits alone say
    nothing to root or on a read-only mount)."""
    import tempfile

    if "\x00" in str(value):  # no file system takes it; pathlib answers "not a folder" rather than fail
        raise OptionError(option, str(value), "a file name cannot hold a NUL character")
    path = check_output_path(option, value)
    if path.exists() and not os.access(path, os.W_OK):
        raise OptionError(option, str(value), "the file exists and is read-only")
    try:
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OptionError(option, str(value), f"its folder takes no new file ({reason})") from None
    return path


def check_tail_m(option: str, value: Any, stored: int) -> int:
    """The per-probe tail size of the GPD model: 3 to the number of non-mated scores kept per probe
    (``compare --top-k``); a larger value cannot take effect and would be silently clamped."""
    n = _integer(option, value)
    if n < 3:
        raise OptionError(option, value, "the tail model needs at least 3 scores per probe")
    if n > stored:
        raise OptionError(
            option,
            value,
            f"the distributions keep at most {stored} non-mated scores per "
            f"probe; use --tail-m {stored} or less, or rerun compare with --top-k {n}",
        )
    return n


def check_rank(option: str, value: Any, stored: int | None = None) -> int:
    """A rank for FNIR/CMC: >= 1, and no deeper than the ranks the distributions can tell."""
    n = check_positive_int(option, value)
    if stored is not None and n > stored:
        raise OptionError(option, value, f"the distributions tell ranks up to {stored} only")
    return n


def parse_list(option: str, text: str | None, check: Callable[[str, Any], Any]) -> list[Any]:
    """A comma-separated list (``"1e-3,1e-4"``), each item through ``check``; empty text -> []."""
    if text is None:
        return []
    items = [x.strip() for x in str(text).split(",")]
    if any(not x for x in items) and str(text).strip():
        raise OptionError(option, text, "an empty item in the comma-separated list")
    return [check(option, x) for x in items if x]


def callback(check: Callable[..., Any], option: str | None = None, **bound: Any) -> Callable[..., Any]:
    """A typer/click callback running ``check`` on the option's value (each item of a repeated option;
    None passes: an option not given). A bad value ends the command at once: the error's name and
    message on stderr and exit status 2, as every faceaudit error ends."""

    def run(ctx: Any, param: Any, value: Any) -> Any:
        if value is None or (ctx is not None and getattr(ctx, "resilient_parsing", False)):
            return value
        name = option or (param.opts[0] if param is not None and getattr(param, "opts", None) else "option")
        try:
            if isinstance(value, (list, tuple)):
                return type(value)(check(name, v, **bound) for v in value)
            return check(name, value, **bound)
        except OptionError as exc:
            from faceaudit.commands.errors import fail

            fail(exc)

    return run


def text_kept(validator: Callable[..., Any], **bound: Any) -> Callable[[str, Any], Any]:
    """A check that validates a text option (``--mean``) but hands the command the text as given."""

    def validate(option: str, value: Any) -> Any:
        validator(option, value, **bound)
        return value

    return validate


def comma_list(check: Callable[[str, Any], Any]) -> Callable[..., Any]:
    """A typer callback for a comma-separated option (``--threshold 0.4,0.5``): every item through
    ``check`` (:func:`parse_list`); the command gets the text as given."""
    return callback(text_kept(parse_list, check=check))


#: every option of every command with a domain, and its check (choices, files and flags aside, which
#: typer and the readers check; an output file written after long work, ``audit --det-out``, has its
#: callback, :func:`check_writable_file`). (command, option, check, how the command applies it)
OPTION_DOMAINS: list[tuple[str, str, Callable[..., Any], str]] = [
    ("audit", "--fmr", check_probability, "each"),
    ("audit", "--bootstrap", check_nonnegative_int, "value"),
    ("audit", "--seed", check_seed, "value"),
    ("audit", "--level", check_level, "value"),
    ("audit", "--bins", check_bins, "value"),
    ("audit", "--encoding", check_encoding, "value"),
    ("audit", "--min-subjects", check_positive_int, "value"),
    ("audit", "--fmr-resolution", check_probability, "value"),
    ("audit", "--fnmr-resolution", check_probability, "value"),
    ("audit", "--censored-below", check_finite, "value"),
    ("audit", "--threshold", check_finite, "each"),
    ("compare", "--fmr", check_probability, "each"),
    ("compare", "--bins", check_bins, "value"),
    ("compare", "--block", check_positive_int, "value"),
    ("compare", "--top-k", check_nonnegative_int, "value"),
    ("compare", "--max-tail", check_nonnegative_int, "value"),
    ("compare", "--workers", check_positive_int, "value"),
    ("compare", "--encoding", check_encoding, "value"),
    ("identify", "--threshold", check_finite, "comma list"),
    ("identify", "--fmr", check_probability, "comma list"),
    ("identify", "--rank", check_positive_int, "comma list; then check_rank against the file"),
    ("identify", "--extrapolate", check_size, "comma list"),
    ("identify", "--tail-m", check_positive_int, "then check_tail_m against the file"),
    ("identify", "--bootstrap", check_nonnegative_int, "value"),
    ("identify", "--seed", check_seed, "value"),
    ("identify", "--level", check_level, "value"),
    ("identify", "--list-length", check_positive_int, "value"),
    ("identify", "--candidate-threshold", check_finite, "value"),
    ("scenario", "--searches", check_nonnegative, "value"),
    ("scenario", "--gallery", check_size, "value"),
    ("scenario", "--threshold", check_finite, "value"),
    ("scenario", "--max-false-matches", check_nonnegative, "value"),
    ("scenario", "--mated-share", check_share, "value"),
    ("scenario", "--tail-m", check_positive_int, "then check_tail_m against the file"),
    ("scenario", "--bootstrap", check_nonnegative_int, "value"),
    ("scenario", "--seed", check_seed, "value"),
    ("scenario", "--level", check_level, "value"),
    ("embed", "--input-size", check_positive_int, "value"),
    ("embed", "--mean", check_channel_values, "value"),
    ("embed", "--std", check_channel_values, "value, positive=True"),
    ("embed", "--sha256", check_sha256, "value"),
    ("embed", "--dim", check_positive_int, "value"),
    ("embed", "--upsample", check_nonnegative_int, "value"),
    ("embed", "--jitters", check_positive_int, "value"),
    ("embed", "--padding", check_nonnegative, "value"),
    ("embed", "--workers", check_positive_int, "value"),
    ("demo", "--searches", check_nonnegative, "value"),
    ("demo", "--gallery", check_size, "value"),
    ("plan", "--claim-fmr", check_probability, "value"),
    ("plan", "--claim-fnmr", check_probability, "value"),
    ("plan", "--power", check_probability, "value"),
    ("plan", "--alternative", check_probability, "value"),
    ("plan", "--level", check_level, "value"),
    ("plan", "--mated-per-subject", check_positive_int, "value"),
    ("plan", "--rate", check_positive, "value"),
    ("plan", "--seed", check_seed, "value"),
    ("evidence", "--folds", check_positive_int, "value; then at least 3 (EvidenceOptionError)"),
    ("evidence", "--bootstrap", check_nonnegative_int, "value"),
    ("evidence", "--seed", check_seed, "value"),
    ("evidence", "--level", check_level, "value"),
    ("evidence", "--strong", check_positive, "value"),
    ("query", "--sentinels", check_nonnegative_int, "value"),
    ("query", "--sentinel-repeats", check_nonnegative_int, "value"),
]
