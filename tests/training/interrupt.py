"""An interruption for resume tests: the process 'dies' right after an epoch's checkpoint."""

from __future__ import annotations

from collections.abc import Callable


class Stop(Exception):
    """Raised from on_epoch: the process 'dies' right after an epoch's checkpoint."""


def stop_after(epoch: int) -> Callable[[dict], None]:
    """An ``on_epoch`` callback that raises :class:`Stop` after epoch ``epoch`` (1-based) is committed."""

    def on_epoch(rec: dict) -> None:
        if rec["epoch"] == epoch:
            raise Stop

    return on_epoch
