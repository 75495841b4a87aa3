"""Running the ``implicit`` library's solvers quietly and fast."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS on one thread while implicit's own threads work (its advice), without its warning.

    implicit warns once per process when *any* loaded BLAS has several threads, including ones
    loaded after the limit was set; the limit below is what the warning asks for.
    """
    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(OpenBLAS|MKL).*threads", category=RuntimeWarning)
        yield
