"""``fusionrec compare``: two systems on the same test file, with a paired bootstrap interval."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fusionrec.cli.common import console, friendly_errors, metrics_table, out, print_json, read_id_list
from fusionrec.errors import ConfigError


def _runs(arg: str, side: str) -> list[Path]:
    runs = [Path(p.strip()) for p in arg.split(",") if p.strip()]
    if not runs:
        raise ConfigError(f"{side} names no run; give a run directory or a comma-separated list of them")
    return runs


@friendly_errors
def compare(
    run_a: Annotated[str, typer.Argument(help="Run directory of system A, or a comma-separated list (e.g. seeds).")],
    run_b: Annotated[str, typer.Argument(help="Run directory of system B, or a comma-separated list.")],
    test_file: Annotated[Path, typer.Option("--test-file", help="Held-out events: user,item,timestamp[,rating].")],
    history: Annotated[Path | None, typer.Option("--history", help="Extra events the models may use (and must not recommend).")] = None,
    k: Annotated[int, typer.Option("--k", help="Cut-off of a --metric given without @K.")] = 10,
    metric: Annotated[str | None, typer.Option("--metric", help="NAME@K, e.g. NDCG@10, Recall@20 (default NDCG@--k).")] = None,
    candidates: Annotated[Path | None, typer.Option("--candidates", help="One item id a line: rank only these.")] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples of the users.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the resampling.")] = 0,
) -> None:
    """Paired bootstrap of B - A over the test users: a table, then one JSON object.

    Each side's per-user metric is averaged over its runs (RUN_A may be 'runs/a-s0,runs/a-s1,runs/a-s2').
    Both are evaluated as 'fusionrec evaluate' does: full ranking, --history used and excluded.
    """
    from fusionrec.data.io import read_interactions_file
    from fusionrec.evaluation.compare import compare_runs

    if k <= 0:
        raise ConfigError(f"--k must be a positive integer, got {k}")
    name = metric or "NDCG"
    name = name if "@" in name else f"{name}@{k}"
    side_a, side_b = _runs(run_a, "RUN_A"), _runs(run_b, "RUN_B")
    test = read_interactions_file(test_file)
    events = read_interactions_file(history) if history is not None else None
    cands = read_id_list(candidates, "item") if candidates is not None else None

    def progress(run: str) -> None:
        console.print(f"evaluating {run} on {test_file.name}", highlight=False)

    res = compare_runs(side_a, side_b, test, metric=name, history=events, candidates=cands, n_boot=n_boot, seed=seed,
                       progress=progress)
    b = res.bootstrap
    pct = f"{b.confidence:.0%}"
    rows = [{"metric": res.metric, "A": b.mean_a, "B": b.mean_b, "B - A": b.mean_diff,
             f"{pct} interval": f"[{b.low:+.4f}, {b.high:+.4f}]", "share < 0": b.share_below_zero,
             "users": b.n_users}]
    title = f"{' + '.join(res.runs_a)} (A) vs {' + '.join(res.runs_b)} (B), paired bootstrap over users"
    out.print(metrics_table(title, rows, list(rows[0])))
    print_json(res.to_dict())
