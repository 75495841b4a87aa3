"""``fusionrec bench kg|social|explain``: the P4 suites of the graph models (kg-lastfm, lastfm-2k)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from fusionrec.cli.bench_options import (
    DataDir,
    Models,
    Seeds,
    Sets,
    command_line,
    data_root,
    default_out,
    names,
    out_option,
    parse_seeds,
    run_measure,
    show,
)
from fusionrec.cli.common import console, friendly_errors
from fusionrec.errors import ConfigError

kg_app = typer.Typer(help="KG link prediction and the kg recommender on kg-lastfm (rows in kg.jsonl).",
                     no_args_is_help=True)
social_app = typer.Typer(help="The social recommender on lastfm-2k: warm users, new users (rows in social.jsonl).",
                         no_args_is_help=True)
explain_app = typer.Typer(help="Share of recommendations with graph evidence on lastfm-2k (rows in explain.jsonl).",
                          no_args_is_help=True)
Threads = Annotated[int, typer.Option("--threads", help="torch threads.")]


def _threads(n: int) -> None:
    import torch

    if n < 1:
        raise ConfigError(f"--threads must be >= 1, got {n}")
    torch.set_num_threads(n)


@kg_app.command("linkpred")
@friendly_errors
def kg_linkpred(
    ctx: typer.Context,
    data_dir: DataDir = None,
    models: Annotated[str | None, typer.Option("--models", help="Comma list of transe, transe-margin, rotate.")] = None,
    epochs: Annotated[int, typer.Option("--epochs")] = 50,
    dim: Annotated[int, typer.Option("--dim", help="Entity dimension.")] = 64,
    seed: Seeds = None,
    threads: Threads = 1,
    out_file: Annotated[Path | None, out_option("kg")] = None,
) -> None:
    """TransE / RotatE link prediction on the held-out kg-lastfm triples: filtered MRR, Hits@K."""
    from fusionrec.bench import kg

    root = data_root(data_dir, kg.DATASET)
    _threads(threads)
    out_file = default_out(out_file, "kg")
    command = command_line(ctx, root)
    rows = []
    for s in parse_seeds(seed):
        for name in names(models, kg.LINKPRED_MODELS):
            rows += run_measure(partial(kg.linkpred, kg.DATASET, root, name, epochs=epochs, dim=dim, seed=s),
                                f"{name}, {epochs} epochs, seed {s}", suite="kg", bench="kg linkpred",
                                dataset=kg.DATASET, seed=s, data_dir=root, command=command, out=out_file)
    show("KG link prediction (filtered)", rows, ["model", "seed", "MRR", "Hits@1", "Hits@3", "Hits@10", "valid_MRR",
                                                 "train_seconds"], out_file)


@kg_app.command("rec")
@friendly_errors
def kg_rec(
    ctx: typer.Context,
    data_dir: DataDir = None,
    models: Annotated[str | None, typer.Option("--models", help="Comma list of pop, bpr, kg, kg-nokg (kg without its KG), or any model.")] = None,
    seed: Seeds = None,
    threads: Threads = 1,
    out_file: Annotated[Path | None, out_option("kg")] = None,
    set_: Sets = None,
) -> None:
    """The kg recommender vs bpr and pop on kg-lastfm (random leave-one-out, tuned on valid)."""
    from fusionrec.bench import kg

    root = data_root(data_dir, kg.DATASET)
    _threads(threads)
    out_file = default_out(out_file, "kg")
    command = command_line(ctx, root)
    rows = []
    for s in parse_seeds(seed):
        for name in names(models, kg.REC_MODELS):
            rows += run_measure(partial(kg.rec, kg.DATASET, root, name, set_ or [], seed=s),
                                f"{name} on {kg.DATASET}, seed {s} (tuning on valid)", suite="kg", bench="kg rec",
                                dataset=kg.DATASET, seed=s, data_dir=root, command=command, out=out_file)
    show(f"recommenders on {kg.DATASET}", rows, ["model", "seed", "NDCG@10", "HR@10", "NDCG@20", "train_seconds",
                                                  "tune_seconds", "explained_share"], out_file)


@social_app.command("rec")
@friendly_errors
def social_rec(
    ctx: typer.Context,
    data_dir: DataDir = None,
    models: Models = None,
    seed: Seeds = None,
    threads: Threads = 1,
    out_file: Annotated[Path | None, out_option("social")] = None,
    set_: Sets = None,
) -> None:
    """social vs ease, als, bpr, pop for warm users of lastfm-2k (random leave-one-out, tuned on valid)."""
    from fusionrec.bench import social

    root = data_root(data_dir, social.DATASET)
    _threads(threads)
    out_file = default_out(out_file, "social")
    command = command_line(ctx, root)
    rows = []
    for s in parse_seeds(seed):
        for name in names(models, social.REC_MODELS):
            rows += run_measure(partial(social.rec, social.DATASET, root, name, set_ or [], seed=s),
                                f"{name} on {social.DATASET}, seed {s} (tuning on valid)", suite="social",
                                bench="social rec", dataset=social.DATASET, seed=s, data_dir=root, command=command,
                                out=out_file)
    show(f"warm users of {social.DATASET}", rows, ["model", "seed", "NDCG@10", "HR@10", "NDCG@20", "HR@20",
                                                    "valid_NDCG@10", "train_seconds", "tune_seconds"], out_file)


@social_app.command("new-users")
@friendly_errors
def social_new_users(
    ctx: typer.Context,
    data_dir: DataDir = None,
    seed: Seeds = None,
    threads: Threads = 1,
    out_file: Annotated[Path | None, out_option("social")] = None,
) -> None:
    """Users with friends but no history, ranked from the social graph alone, vs friends' counts and pop."""
    from fusionrec.bench import social

    root = data_root(data_dir, social.DATASET)
    _threads(threads)
    out_file = default_out(out_file, "social")
    command = command_line(ctx, root)

    def on_trial(settings: dict[str, Any], score: float) -> None:
        console.print(f"  {settings}: valid NDCG@20 {score:.4f}", highlight=False)

    rows = []
    for s in parse_seeds(seed):
        rows += run_measure(partial(social.new_users, social.DATASET, root, seed=s, on_trial=on_trial),
                            f"new users of {social.DATASET}, seed {s} ({len(social.NEW_USER_GRID)} settings tried)",
                            suite="social", bench="social new-users", dataset=social.DATASET, seed=s, data_dir=root,
                            command=command, out=out_file)
    show(f"new users of {social.DATASET} (friends only)", rows,
         ["model", "seed", "Recall@20", "NDCG@20", "Recall@10", "NDCG@10", "valid_NDCG@20", "test_users"], out_file)


@explain_app.command("coverage")
@friendly_errors
def explain_coverage(
    ctx: typer.Context,
    data_dir: DataDir = None,
    model: Annotated[str, typer.Option("--model", help="social or kg.")] = "social",
    k: Annotated[int, typer.Option("--k", help="List length.")] = 10,
    users: Annotated[int | None, typer.Option("--users", help="Explain a random sample of this many users.")] = None,
    seed: Seeds = None,
    threads: Threads = 1,
    out_file: Annotated[Path | None, out_option("explain")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="key=value model setting instead of its default (repeatable), e.g. friend_item_weight=0.")] = None,
) -> None:
    """Share of top-k items with a KG path or social evidence, as 'fusionrec explain' shows it."""
    from fusionrec.bench import explain
    from fusionrec.jobs import model_settings

    if model not in explain.MODELS:
        raise ConfigError(f"--model must be one of {', '.join(explain.MODELS)}, got {model!r}")
    if k < 1:
        raise ConfigError(f"--k must be >= 1, got {k}")
    root = data_root(data_dir, explain.DATASET)
    _threads(threads)
    out_file = default_out(out_file, "explain")
    command = command_line(ctx, root)
    sets = model_settings(model, None, set_ or [])
    rows = []
    for s in parse_seeds(seed):
        rows += run_measure(partial(explain.coverage, explain.DATASET, root, model, k=k, n_users=users, threads=threads,
                                    sets=sets, seed=s),
                            f"{model} on {explain.DATASET}, top {k}, seed {s}", suite="explain",
                            bench="explain coverage", dataset=explain.DATASET, seed=s, data_dir=root, command=command,
                            out=out_file)
    show(f"explanation coverage on {explain.DATASET}", rows,
         ["model", "seed", "k", "coverage", "kg", "social", "users_all_covered", "explain_seconds"], out_file)
