"""Validators for the domain of every command-line option, raising :class:`OptionError`.

Each ``check_*`` takes the option's name (as the user typed it, e.g. ``"--fmr"``) and its value, and
returns the value (normalised where that is its job) or raises :class:`~faceaudit.errors.OptionError`
naming the option, the value and the rule. ``callback(check, option)`` adapts one to a typer callback,
so that a bad value ends in exit 2 with the error's name before any work starts.
"""

from __future__ import annotations

import codecs

from faceaudit.errors import OptionError


def check_encoding(encoding: str, option: str = "--encoding") -> str:
    """A text encoding Python knows; returns its canonical name (``"UTF8"`` -> ``"utf-8"``)."""
    try:
        info = codecs.lookup(str(encoding))
    except LookupError:
        info = None
    # bytes-to-bytes codecs (base64, zlib) and str-to-str ones (rot13) are not text encodings
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise OptionError(option, encoding, "not a text encoding (e.g. utf-8, latin-1, cp1252, utf-16)")
    return info.name
