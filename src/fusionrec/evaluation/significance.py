"""Paired bootstrap over users: is B's metric different from A's, and by how much?

Both systems are scored on the same test users; for each user ``d_u = b_u - a_u``. Resampling the
users with replacement ``n_boot`` times gives the distribution of the mean difference; the
percentile interval of those means is the confidence interval (Efron & Tibshirani, *An
Introduction to the Bootstrap*, 1993, ch. 13; for IR evaluation, Sakai, SIGIR 2006). The pairing
is what makes it sharp: per-user differences vary far less than per-user metrics.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a = rng.random(500)
>>> res = paired_bootstrap(a, a + 0.1, n_boot=2000, seed=0)
>>> round(res.mean_diff, 3), res.low > 0, res.n_users
(0.1, True, 500)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fusionrec.errors import ConfigError, DataError

#: resampled means are drawn in blocks of at most this many indices (memory stays ~100 MB)
_BLOCK_ELEMENTS = 8_000_000


@dataclass(frozen=True)
class BootstrapResult:
    """The paired bootstrap of the mean per-user difference ``b - a``.

    ``low``/``high`` bound the ``confidence`` percentile interval of the mean difference;
    ``share_below_zero`` is the share of resampled means below 0 (near 0 or 1: a clear direction).
    """

    mean_a: float
    mean_b: float
    mean_diff: float
    low: float
    high: float
    confidence: float
    share_below_zero: float
    n_users: int
    n_boot: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _values(x: Sequence[float] | np.ndarray, side: str) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 1:
        raise DataError(f"{side} must be one value per user (1-d), got shape {v.shape}")
    if not np.isfinite(v).all():
        raise DataError(f"{side} has {int((~np.isfinite(v)).sum())} non-finite per-user value(s); every user "
                        f"needs a metric value")
    return v


def pair_by_user(values_a: np.ndarray, users_a: Sequence[Any] | np.ndarray, values_b: np.ndarray,
                 users_b: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(users, a, b)`` aligned on the same users (sorted); fails unless both sides have the same users.

    Raises
    ------
    DataError
        A user listed twice, or users on one side only (the message counts and shows some).
    """
    ua, ub = np.asarray(users_a), np.asarray(users_b)
    for side, u, v in (("A", ua, values_a), ("B", ub, values_b)):
        if len(u) != len(v):
            raise DataError(f"{side}: {len(v)} values for {len(u)} users; give one value per user")
        if len(np.unique(u)) != len(u):
            raise DataError(f"{side} lists a user more than once; pair each user's single value")
    only_a, only_b = np.setdiff1d(ua, ub), np.setdiff1d(ub, ua)
    if len(only_a) or len(only_b):
        raise DataError(f"unpaired inputs: {len(only_a)} user(s) only in A (e.g. {only_a[:3].tolist()}), "
                        f"{len(only_b)} only in B (e.g. {only_b[:3].tolist()}); evaluate both on the same test "
                        f"users")
    oa, ob = np.argsort(ua, kind="stable"), np.argsort(ub, kind="stable")
    return ua[oa], np.asarray(values_a)[oa], np.asarray(values_b)[ob]


def paired_bootstrap(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    users_a: Sequence[Any] | np.ndarray | None = None,
    users_b: Sequence[Any] | np.ndarray | None = None,
    n_boot: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Paired bootstrap (percentile method) of the mean per-user difference ``b - a``.

    Parameters
    ----------
    a, b : (n_users,) per-user metric values of systems A and B (e.g. ``EvalResult.per_user["NDCG@10"]``).
    users_a, users_b : (n_users,) the user of each value. Given, the two sides are paired by user
        (and must hold the same users); not given, ``a[i]`` and ``b[i]`` must be the same user.
    n_boot : resamples of the users.
    confidence : coverage of the interval, in (0, 1).
    seed : seeds the resampling (same inputs and seed, same interval).

    Returns
    -------
    BootstrapResult

    Raises
    ------
    DataError
        Unpaired inputs: different lengths, different users, a user twice, no users, non-finite values.
    ConfigError
        ``n_boot < 1`` or ``confidence`` outside (0, 1).
    """
    if n_boot < 1:
        raise ConfigError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must lie in (0, 1), got {confidence}")
    va, vb = _values(a, "A"), _values(b, "B")
    if (users_a is None) != (users_b is None):
        raise DataError("give the users of both sides (users_a and users_b) or of neither")
    if users_a is not None and users_b is not None:
        _, va, vb = pair_by_user(va, users_a, vb, users_b)
    elif len(va) != len(vb):
        raise DataError(f"unpaired inputs: A has {len(va)} users, B has {len(vb)}; paired values need the same "
                        f"users in the same order (or pass users_a and users_b to pair them by id)")
    n = len(va)
    if n == 0:
        raise DataError("no users to compare: both sides are empty")
    d = vb - va  # (n,)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot, dtype=np.float64)
    block = max(1, _BLOCK_ELEMENTS // n)
    for start in range(0, n_boot, block):
        stop = min(n_boot, start + block)
        idx = rng.integers(0, n, size=(stop - start, n))  # (block, n) resampled users
        means[start:stop] = d[idx].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return BootstrapResult(mean_a=float(va.mean()), mean_b=float(vb.mean()), mean_diff=float(d.mean()),
                           low=float(low), high=float(high), confidence=confidence,
                           share_below_zero=float((means < 0).mean()), n_users=n, n_boot=n_boot, seed=seed)
