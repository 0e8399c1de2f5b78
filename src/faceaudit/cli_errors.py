"""Kept importable for :mod:`faceaudit.compare.command`: the error handler is
:func:`faceaudit.commands.errors.fail`."""

from faceaudit.commands.errors import fail

__all__ = ["fail"]
