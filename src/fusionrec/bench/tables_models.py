"""The tables of the headline suites (models, compare, cold, lastfm, speed) in BENCHMARKS.md."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from fusionrec.bench.models import HEADLINE_MODELS
from fusionrec.bench.report import Column, Table

Row = Mapping[str, Any]
ORDER = tuple(reversed(HEADLINE_MODELS))  # fusion first, then the sequence models, then the classics


def _prior(row: Row) -> str:
    p = row.get("prior") or {}
    if not p or "topk" not in p:
        return "—"
    return f"top {p['topk']} ({p.get('weighting', '?')})"


def bucket(key: str, low: float, high: float) -> Callable[[Row], float | None]:
    """Mean per-user NDCG@10 of the test users whose ``key`` (``history``: training events;
    ``item_count``: training events of their test item) lies in [low, high)."""
    def value(row: Row) -> float | None:
        pu = row.get("per_user") or {}
        if key not in pu:
            return None
        v, ndcg = np.asarray(pu[key]), np.asarray(pu["NDCG@10"])
        keep = (v >= low) & (v < high)
        return float(ndcg[keep].mean()) if keep.any() else None
    return value


def _share(key: str, low: float, high: float) -> Callable[[Row], float | None]:
    def value(row: Row) -> float | None:
        pu = row.get("per_user") or {}
        if key not in pu:
            return None
        v = np.asarray(pu[key])
        return float(((v >= low) & (v < high)).mean())
    return value


def models_table(dataset: str) -> Table:
    return Table(
        f"models-{dataset}", suite="models", where={"bench": "models", "dataset": dataset}, group=("model",),
        order=ORDER,
        columns=(Column("NDCG@10", "NDCG@10"), Column("HR@10", "HR@10"), Column("NDCG@20", "NDCG@20"),
                 Column("valid NDCG@10", "valid_NDCG@10"), Column("s/epoch", "seconds_per_epoch", "{:.1f}"),
                 Column("train s", "train_seconds", "{:.0f}"), Column("tune s", "tune_seconds", "{:.0f}"),
                 Column("ms to score a user", "score_ms_per_user", "{:.2f}"),
                 Column("peak MB", "peak_rss_mb", "{:,.0f}"), Column("item-item prior", _prior, aggregate=False)),
        command=f"fusionrec bench models --dataset {dataset} --data-dir ../shared/datasets --seed 0,1,2")


def where_table(dataset: str) -> Table:
    """NDCG@10 by how much the model knows: users by history length, test items by training count."""
    cuts = {"history": ((0, 30), (30, 100), (100, 10**9)), "item_count": ((0, 10), (10, 50), (50, 10**9))}
    cols = []
    for key, spans in cuts.items():
        name = "users with" if key == "history" else "test items with"
        for lo, hi in spans:
            label = f"{name} {lo}-{hi - 1} events" if hi < 10**9 else f"{name} ≥ {lo} events"
            cols.append(Column(label, bucket(key, lo, hi)))
    return Table(f"where-{dataset}", suite="models", where={"bench": "models", "dataset": dataset,
                                                           "model": ("fusion", "sasrec", "gru4rec", "ease")},
                 group=("model",), order=("fusion", "sasrec", "gru4rec", "ease"), columns=tuple(cols),
                 command=f"fusionrec bench models --dataset {dataset} --data-dir ../shared/datasets --seed 0,1,2")


def compare_table(dataset: str, suite: str = "models") -> Table:
    return Table(
        f"compare-{dataset}", suite="compare",
        where={"bench": "compare", "dataset": dataset, "suite_compared": suite}, group=("model", "versus"),
        columns=(Column("mean", "fusion mean"), Column("versus mean", "versus mean"),
                 Column("difference", "difference", "{:+.4f}"), Column("95% interval", lambda r: (
                     f"[{r['low']:+.4f}, {r['high']:+.4f}]" if "low" in r else None), aggregate=False),
                 Column("P(difference < 0)", "share_below_zero", "{:.3f}"),
                 Column("runner-up", lambda r: "yes" if r.get("runner_up") else "", aggregate=False),
                 Column("users", "users", "{:.0f}"),
                 Column("seeds", lambda r: ",".join(map(str, r.get("seeds", []))), aggregate=False)),
        command=f"fusionrec bench compare --dataset {dataset} --suite {suite}")


COLD = Table(
    "cold-ml-100k", suite="cold", where={"bench": "cold"}, group=("model",),
    columns=(Column("Recall@20", "Recall@20"), Column("NDCG@20", "NDCG@20"), Column("Recall@10", "Recall@10"),
             Column("valid cold Recall@20", "valid_recall@20"),
             Column("chosen on valid cold items", "chosen_on_valid", aggregate=False),
             Column("bar (1.2 x LightFM)", "bar_recall@20", aggregate=False),
             Column("train s", "train_seconds", "{:.0f}"), Column("peak MB", "peak_rss_mb", "{:,.0f}")),
    command="fusionrec bench cold --data-dir ../shared/datasets --bench-dir ../shared/bench")

LASTFM = Table(
    "lastfm", suite="lastfm", where={"bench": "lastfm"}, group=("model",),
    order=("fusion", "ease+tags", "als+tags", "ease", "als"),
    columns=(Column("NDCG@10", "NDCG@10"), Column("HR@10", "HR@10"), Column("NDCG@20", "NDCG@20"),
             Column("valid NDCG@10", "valid_NDCG@10"), Column("train s", "train_seconds", "{:.0f}"),
             Column("peak MB", "peak_rss_mb", "{:,.0f}"), Column("item-item prior", _prior, aggregate=False),
             Column("side events dropped by the split", "side_events_dropped", "{:,.0f}", aggregate=False),
             Column("top-10 items with a KG path or friends", "explained.coverage", "{:.1%}")),
    command="fusionrec bench lastfm --data-dir ../shared/datasets")

SPEED = Table(
    "speed-synthetic", suite="speed", where={"bench": "speed"}, group=("world", "model"),
    columns=(Column("s/epoch", "seconds_per_epoch", "{:.1f}"), Column("epochs", "epochs", "{:.0f}"),
             Column("NDCG@10", "NDCG@10"), Column("HR@10", "HR@10"), Column("valid NDCG@10", "valid_NDCG@10"),
             Column("ms to score a user", "score_ms_per_user", "{:.2f}"),
             Column("of which user tower ms", "user_tower_ms", "{:.2f}"), Column("matvec ms", "matvec_ms", "{:.3f}"),
             Column("peak MB", "peak_rss_mb", "{:,.0f}")),
    command="fusionrec bench speed --users 20000 --items 12000 --mean-events 10")

TABLES = [models_table("ml-100k"), models_table("ml-latest-small"), where_table("ml-100k"),
          where_table("ml-latest-small"), compare_table("ml-100k"), compare_table("ml-latest-small"),
          compare_table("lastfm-2k", "lastfm"), COLD, LASTFM, SPEED]
