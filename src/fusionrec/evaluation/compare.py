"""Compare two systems (each one run, or several runs such as seeds) on the same test users.

Every run is evaluated by :func:`~fusionrec.evaluation.evaluate.evaluate_run` (the path of
``fusionrec evaluate``); a side's per-user metric is the mean over its runs; the two sides are paired
by raw user id and :func:`~fusionrec.evaluation.significance.paired_bootstrap` gives the interval of
the mean difference B - A.

Examples
--------
>>> res = compare_runs(["runs/ease"], ["runs/als-s0", "runs/als-s1"], test_events,
...                    history=valid_events, metric="NDCG@10")  # doctest: +SKIP
>>> res.bootstrap.mean_diff, (res.bootstrap.low, res.bootstrap.high)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fusionrec.errors import DataError
from fusionrec.evaluation.evaluate import evaluate_run
from fusionrec.evaluation.metrics import parse_metric
from fusionrec.evaluation.significance import BootstrapResult, pair_by_user, paired_bootstrap

if TYPE_CHECKING:
    import pandas as pd

    from fusionrec.run import Run


@dataclass(frozen=True)
class RunComparison:
    """The paired comparison of side A and side B on one metric."""

    metric: str
    runs_a: tuple[str, ...]
    runs_b: tuple[str, ...]
    bootstrap: BootstrapResult

    def to_dict(self) -> dict[str, Any]:
        b = self.bootstrap
        return {"metric": self.metric, "a": {"runs": list(self.runs_a), "mean": b.mean_a},
                "b": {"runs": list(self.runs_b), "mean": b.mean_b}, "difference": b.mean_diff,
                "ci_low": b.low, "ci_high": b.high, "confidence": b.confidence,
                "share_below_zero": b.share_below_zero, "users": b.n_users, "n_boot": b.n_boot, "seed": b.seed}


def _label(run: Run | str | Path) -> str:
    return str(run) if isinstance(run, (str, Path)) else str(run.info.get("model", "run"))


def _load(run: Run | str | Path) -> Run:
    from fusionrec.run import Run

    return run if isinstance(run, Run) else Run.load(run)


def per_user_metric(
    runs: Sequence[Run | str | Path],
    test_events: pd.DataFrame,
    metric: str = "NDCG@10",
    *,
    history: pd.DataFrame | None = None,
    candidates: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(raw users, values)``: each test user's ``metric``, averaged over ``runs`` (sorted by user).

    Run directories are loaded fresh (evaluation adds the test users to a run's id map).
    """
    if not runs:
        raise DataError("no runs given for a side of the comparison")
    name, k = parse_metric(metric)
    key = f"{name}@{k}"
    per_run = []
    for r in runs:
        run = _load(r)
        if progress is not None:
            progress(_label(r))
        res = evaluate_run(run, test_events, (k,), history=history, candidates=candidates)
        per_run.append((run.user_ids.raw(res.users).astype(str), res.per_user[key].astype(np.float64)))
    users, total = per_run[0][0], per_run[0][1]
    for u, v in per_run[1:]:  # the same test users, whatever each run's id order
        users, total, v = pair_by_user(total, users, v, u)
        total = total + v
    order = np.argsort(users, kind="stable")
    return users[order], total[order] / len(runs)


def compare_runs(
    runs_a: Sequence[Run | str | Path],
    runs_b: Sequence[Run | str | Path],
    test_events: pd.DataFrame,
    *,
    metric: str = "NDCG@10",
    history: pd.DataFrame | None = None,
    candidates: Sequence[str] | None = None,
    n_boot: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> RunComparison:
    """Paired bootstrap of ``metric`` (``NAME@K``) between side B and side A on the same test events.

    Each side is one run or several (e.g. seeds); a user's value on a side is the mean over its runs.
    The difference is B - A.
    """
    name, k = parse_metric(metric)
    metric = f"{name}@{k}"
    kw: dict[str, Any] = {"history": history, "candidates": candidates, "progress": progress}
    ua, va = per_user_metric(runs_a, test_events, metric, **kw)
    ub, vb = per_user_metric(runs_b, test_events, metric, **kw)
    boot = paired_bootstrap(va, vb, users_a=ua, users_b=ub, n_boot=n_boot, confidence=confidence, seed=seed)
    return RunComparison(metric, tuple(_label(r) for r in runs_a), tuple(_label(r) for r in runs_b), boot)
