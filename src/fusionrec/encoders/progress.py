"""Progress for long encoding steps: a rich bar when asked for and the step is long, else nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: steps over more rows than this get a bar when ``progress=True``
MIN_ROWS = 1000


@contextmanager
def progress_bar(total: int, description: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(k)``; draws a rich bar only when ``enabled`` and ``total > MIN_ROWS``."""
    if not enabled or total <= MIN_ROWS:
        yield lambda k: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn()) as bar:
        task = bar.add_task(description, total=total)
        yield lambda k: bar.advance(task, k)
