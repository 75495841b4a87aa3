"""``fusionrec cv`` and ``fusionrec leaderboard`` (the benchmarks are in :mod:`fusionrec.cli.bench`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fusionrec.cli.common import console, friendly_errors, metrics_table, out, print_json, step
from fusionrec.errors import ConfigError

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Folder holding the datasets (or $FUSIONREC_DATA).")]
DEFAULT_MODELS = "pop,itemknn,puresvd,ease,als,bpr"


@friendly_errors
def cv(
    dataset: Annotated[str, typer.Option("--dataset", help="Catalog name, 'synthetic', or a dataset directory.")],
    model: Annotated[str, typer.Option("--model")],
    data_dir: DataDir = None,
    folds: Annotated[int | None, typer.Option("--folds", help="k-fold CV by user.")] = None,
    rolling: Annotated[int | None, typer.Option("--rolling", help="Rolling-origin time-series CV with N windows.")] = None,
    k: Annotated[list[int] | None, typer.Option("--k")] = None,
    config: Annotated[Path | None, typer.Option("--config")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json-out", help="Also write the results as JSON.")] = None,
) -> None:
    """Cross-validate a model: mean ± std of every metric over the folds."""
    from fusionrec.data import catalog
    from fusionrec.jobs import build_model, cross_validate, model_settings

    if folds is not None and rolling is not None:
        raise ConfigError("give either --folds N or --rolling N, not both")
    if folds is None and rolling is None:
        folds = 5
    ks = tuple(sorted(set(k or [10, 20])))
    settings = model_settings(model, config, set_ or [])
    build_model(model, settings)
    with step(f"loading {dataset}"):
        data = catalog.load(dataset, data_dir)
    n = rolling if rolling is not None else folds

    def on_fold(f: int, res: dict[str, float]) -> None:
        key = f"NDCG@{ks[0]}"
        extra = f", RMSE {res['RMSE']:.4f}" if "RMSE" in res else ""
        console.print(f"fold {f + 1}/{n}: {key} {res[key]:.4f}{extra} ({res['train_seconds']:.1f} s)", highlight=False)

    res = cross_validate(data, model, settings, folds=folds, rolling=rolling, ks=ks, seed=seed, on_fold=on_fold)
    rows = [{"metric": m, "mean": mu, "std": sd} for m, (mu, sd, _) in res.items()]
    kind = f"{rolling}-window rolling origin" if rolling else f"{folds}-fold"
    out.print(metrics_table(f"{model} on {dataset}, {kind}", rows, ["metric", "mean", "std"]))
    summary = {m: {"mean": mu, "std": sd, "folds": v} for m, (mu, sd, v) in res.items()}
    print_json({m: [round(s["mean"], 6), round(s["std"], 6)] for m, s in summary.items()})
    if json_out is not None:
        json_out.write_text(json.dumps({"dataset": dataset, "model": model, "cv": kind, "results": summary}, indent=1))


@friendly_errors
def leaderboard(
    dataset: Annotated[str, typer.Option("--dataset")] = "synthetic",
    data_dir: DataDir = None,
    models: Annotated[str, typer.Option("--models", help="Comma-separated model names.")] = DEFAULT_MODELS,
    split: Annotated[str, typer.Option("--split")] = "loo",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    save: Annotated[Path | None, typer.Option("--save", help="Also save each model's run as SAVE/<model> (and the split in SAVE/split), e.g. for 'fusionrec explain'.")] = None,
) -> None:
    """Train every model on one split and print a leaderboard sorted by NDCG@10."""
    from fusionrec.data import catalog
    from fusionrec.jobs import leaderboard as run_leaderboard

    names = [m.strip() for m in models.split(",") if m.strip()]
    with step(f"loading {dataset}"):
        data = catalog.load(dataset, data_dir)
    console.print(f"{data!r}; split {split}; test users get their valid events as history", highlight=False)

    def on_result(name: str, row: dict[str, float]) -> None:
        console.print(f"[green]✓[/] {name}: NDCG@10 {row['NDCG@10']:.4f} ({row['train_s']:.2f} s)", highlight=False)

    def on_model(name: str, model: object, parts: object) -> None:
        if save is None:
            return
        from fusionrec.data.splits import write_split
        from fusionrec.run import Run

        Run(model, parts.train.user_ids, parts.train.item_ids, {"dataset": dataset, "split": split}).save(save / name)  # type: ignore[attr-defined]
        if not (save / "split").exists():
            write_split(parts, save / "split")  # type: ignore[arg-type]

    rows = run_leaderboard(data, names, protocol=split, seed=seed, on_result=on_result, on_model=on_model)
    if save is not None:
        console.print(f"runs saved in {save}/<model> (explain one: fusionrec explain --run {save}/{names[-1]})",
                      highlight=False)
    rows.sort(key=lambda r: -r["NDCG@10"])
    cols = ["model", "NDCG@10", "HR@10", "MRR@10", "Recall@20", "Coverage@10", "train_s"]
    out.print(metrics_table(f"leaderboard: {data.name} ({split})", rows, cols))
