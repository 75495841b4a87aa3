"""The tables of BENCHMARKS.md: each names its rows, grouping and columns (see :mod:`fusionrec.bench.report`).

A table appears in BENCHMARKS.md between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``;
``fusionrec bench report`` rewrites it from the rows, ``--check`` fails when it is stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fusionrec.bench.report import Column, Table
from fusionrec.bench.tables_models import TABLES as MODEL_TABLES


def _settings(row: Mapping[str, Any]) -> str:
    """Chosen settings without the seed (the seeds have their own column)."""
    s = {k: v for k, v in (row.get("settings") or {}).items() if k != "seed"}
    return ", ".join(f"{k}={v}" for k, v in s.items()) or "—"


def _per_fold(row: Mapping[str, Any]) -> str:
    return ", ".join(f"{v:.4f}" for v in row.get("RMSE per fold") or []) or "—"


def _kge_settings(row: Mapping[str, Any]) -> str | None:
    s = row.get("settings")
    return "dim={dim}, epochs={epochs}, gamma={margin}, loss={loss}".format(**s) if s else None


def _baselines(dataset: str) -> Table:
    return Table(
        f"baselines-{dataset}", suite="baselines", where={"bench": "baselines", "dataset": dataset}, group=("model",),
        order=("pop", "itemknn", "puresvd", "ease", "als", "bpr"),
        columns=(Column("NDCG@10", "NDCG@10"), Column("HR@10", "HR@10"),
                 Column("fit s", "train_seconds", "{:.2f}"), Column("tune s", "tune_seconds", "{:.1f}"),
                 Column("peak MB", "peak_rss_mb", "{:,.0f}"),
                 Column("chosen settings", _settings, aggregate=False)),
        command=f"fusionrec bench baselines --dataset {dataset} --data-dir ../shared/datasets")


_RANKING = Table(
    "ranking", suite="ranking", where={"bench": "ranking"}, group=("users", "items", "dim", "k"),
    columns=(Column("seconds", "seconds", "{:.2f}"), Column("peak MB", "peak_rss_mb", "{:,.0f}"),
             Column("scoring GFLOP", "scoring_gflop", "{:,.1f}"),
             Column("achieved GFLOP/s", "achieved_gflops", "{:.1f}"),
             Column("fp32 GEMM peak GFLOP/s", "machine_matmul_peak_gflops", "{:.1f}"),
             Column("fraction of peak", "fraction_of_peak", "{:.2f}")),
    command="fusionrec bench ranking --users 6040 --items 3706")

_CV = Table(
    "cv-ml-100k", suite="cv", where={"bench": "cv", "dataset": "ml-100k"}, group=("model",), order=("mf", "ratingformer"),
    columns=(Column("RMSE", "RMSE"), Column("RMSE std over folds", "RMSE std over folds"), Column("MAE", "MAE"),
             Column("NDCG@10", "NDCG@10"), Column("RMSE per fold", _per_fold, aggregate=False),
             Column("fit s per fold", "train_seconds", "{:.1f}"),
             Column("peak MB", "peak_rss_mb", "{:,.0f}")),
    command="fusionrec bench cv --dataset ml-100k --data-dir ../shared/datasets")

_KG_LINKPRED = Table(
    "kg-linkpred", suite="kg", where={"bench": "kg linkpred"}, group=("model",),
    order=("transe-margin", "rotate", "transe"),
    columns=(Column("MRR", "MRR"), Column("Hits@1", "Hits@1"), Column("Hits@3", "Hits@3"),
             Column("Hits@10", "Hits@10"), Column("valid MRR", "valid_MRR"),
             Column("train s", "train_seconds", "{:.0f}"),
             Column("settings", _kge_settings, aggregate=False)),
    command="fusionrec bench kg linkpred --data-dir ../shared/datasets")

_KG_REC = Table(
    "kg-rec", suite="kg", where={"bench": "kg rec"}, group=("model",), order=("kg", "kg-nokg", "bpr", "pop"),
    columns=(Column("NDCG@10", "NDCG@10"), Column("HR@10", "HR@10"), Column("NDCG@20", "NDCG@20"),
             Column("train s", "train_seconds", "{:.1f}"), Column("tune s", "tune_seconds", "{:.0f}"),
             Column("explained (KG path)", "explained_share", "{:.1%}"),
             Column("chosen settings", _settings, aggregate=False)),
    command="fusionrec bench kg rec --data-dir ../shared/datasets")

_SOCIAL_REC = Table(
    "social-rec", suite="social", where={"bench": "social rec"}, group=("model",),
    order=("social", "als", "ease", "bpr", "pop"),
    columns=(Column("NDCG@10", "NDCG@10"), Column("HR@10", "HR@10"), Column("NDCG@20", "NDCG@20"),
             Column("valid NDCG@10", "valid_NDCG@10"), Column("fit s", "train_seconds", "{:.1f}"),
             Column("tune s", "tune_seconds", "{:.0f}"), Column("chosen settings", _settings, aggregate=False)),
    command="fusionrec bench social rec --data-dir ../shared/datasets")

_SOCIAL_NEW_USERS = Table(
    "social-new-users", suite="social", where={"bench": "social new-users"}, group=("model",),
    columns=(Column("Recall@20", "Recall@20"), Column("NDCG@20", "NDCG@20"), Column("Recall@10", "Recall@10"),
             Column("valid NDCG@20", "valid_NDCG@20"), Column("test users", "test_users", "{:.0f}"),
             Column("settings", _settings, aggregate=False)),
    command="fusionrec bench social new-users --data-dir ../shared/datasets")

_EXPLAIN = Table(
    "explain-coverage", suite="explain", where={"bench": "explain coverage"},
    group=("model", _settings, "k"), group_headers=("model", "settings", "k"),
    columns=(Column("with any evidence", "coverage", "{:.1%}"), Column("KG path", "kg", "{:.1%}"),
             Column("social", "social", "{:.1%}"), Column("users with all k covered", "users_all_covered", "{:.1%}"),
             Column("explain s", "explain_seconds", "{:.1f}")),
    command="fusionrec bench explain coverage --data-dir ../shared/datasets --model social")

_ABLATION = Table(
    "ablation-ml-latest-small", suite="ablation", where={"bench": "ablation", "dataset": "ml-latest-small"},
    group=("variant",),
    columns=(Column("NDCG@10", "NDCG@10"), Column("HR@10", "HR@10"), Column("vs full", "vs full", "{:+.1%}"),
             Column("train s", "train_seconds", "{:.0f}"), Column("peak MB", "peak_rss_mb", "{:,.0f}")),
    command="fusionrec bench ablation --dataset ml-latest-small --data-dir ../shared/datasets")

#: every table BENCHMARKS.md may hold, by marker name
TABLES: dict[str, Table] = {t.name: t for t in (
    _baselines("ml-100k"), _baselines("ml-latest-small"), _RANKING, _CV, _KG_LINKPRED, _KG_REC, _SOCIAL_REC,
    _SOCIAL_NEW_USERS, _EXPLAIN, _ABLATION, *MODEL_TABLES)}
