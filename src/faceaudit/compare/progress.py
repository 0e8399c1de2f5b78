"""A rich progress bar in pairs and pairs/s on stderr (or nothing)."""

from __future__ import annotations

import time

__all__ = ["Progress"]


class Progress:
    """A rich progress bar in pairs and pairs/s on stderr (or nothing)."""

    def __init__(self, enabled: bool, total: int, description: str) -> None:
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} pairs"),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(description, total=total, rate="")
        self.t0 = time.perf_counter()
        self.done = 0

    def advance(self, pairs: int, description: str | None = None) -> None:
        self.done += pairs
        if self.bar is not None:
            rate = self.done / max(time.perf_counter() - self.t0, 1e-9)
            kw = {"description": description} if description else {}
            self.bar.update(self.task, advance=pairs, rate=f"{rate / 1e6:,.1f} M pairs/s", **kw)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
