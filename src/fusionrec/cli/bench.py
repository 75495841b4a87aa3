"""``fusionrec bench``: the benchmark suites (rows into ``benchmarks/results/``) and ``bench report``.

Each suite command measures through :func:`fusionrec.bench.measure`, which appends one row per
measurement, with its provenance, to ``--out`` (default ``benchmarks/results/<suite>.jsonl``), then
prints a table of what it measured. ``bench report`` regenerates the tables of BENCHMARKS.md.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from fusionrec.cli import bench_fusion, bench_graph
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
from fusionrec.cli.common import console, friendly_errors, print_json, step
from fusionrec.errors import ConfigError

app = typer.Typer(help="Benchmarks: each writes result rows to benchmarks/results/<suite>.jsonl (see BENCHMARKS.md).",
                  no_args_is_help=True)
app.add_typer(bench_graph.kg_app, name="kg")
app.add_typer(bench_graph.social_app, name="social")
app.add_typer(bench_graph.explain_app, name="explain")
bench_fusion.register(app)

@app.command("baselines")
@friendly_errors
def baselines(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option("--dataset", help="Catalog name, 'synthetic', or a dataset directory.")],
    data_dir: DataDir = None,
    models: Models = None,
    seed: Seeds = None,
    out_file: Annotated[Path | None, out_option("baselines")] = None,
    set_: Sets = None,
) -> None:
    """Each baseline on the evalkit leave-one-out split, each (model, seed) in its own process."""
    from fusionrec.bench.baselines import DEFAULT_MODELS, baseline_in_subprocess
    from fusionrec.bench.rows import append_row

    root = data_root(data_dir, dataset)
    out_file = default_out(out_file, "baselines")
    command = command_line(ctx, root)
    rows = []
    for s in parse_seeds(seed):
        for name in names(models, DEFAULT_MODELS):
            with step(f"{name} on {dataset}, seed {s} (own process)"):
                row = baseline_in_subprocess(dataset, name, root, set_ or [], seed=s, command=command)
            append_row(out_file, row)
            rows.append(row)
    show(f"baselines on {dataset} (loo, valid as history)", rows,
         ["model", "seed", "NDCG@10", "HR@10", "MRR@10", "train_seconds", "tune_seconds", "peak_rss_mb"], out_file)


@app.command("baseline-one", hidden=True)
@friendly_errors
def baseline_one(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option("--dataset")],
    model: Annotated[str, typer.Option("--model")],
    data_dir: DataDir = None,
    set_: Annotated[list[str] | None, typer.Option("--set")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    suite: Annotated[str, typer.Option("--suite")] = "baselines",
    bench: Annotated[str, typer.Option("--bench")] = "baselines",
    command: Annotated[str | None, typer.Option("--command", help="The command to record (the parent's).")] = None,
) -> None:
    """One baseline row measured in this process, printed as JSON (used by 'bench baselines')."""
    from fusionrec.bench import measure
    from fusionrec.bench.baselines import baseline

    root = data_root(data_dir)
    row = measure(lambda: baseline(dataset, model, root, set_ or [], seed), suite=suite, bench=bench, dataset=dataset,
                  seed=seed, data_dir=root, command=command or command_line(ctx, root))[0]
    print_json(row)


@app.command("ranking")
@friendly_errors
def ranking(
    ctx: typer.Context,
    users: Annotated[int, typer.Option("--users")] = 100_000,
    items: Annotated[int, typer.Option("--items")] = 100_000,
    dim: Annotated[int, typer.Option("--dim")] = 64,
    k: Annotated[int, typer.Option("--k")] = 20,
    history: Annotated[int, typer.Option("--history", help="Seen items per user (excluded).")] = 20,
    seed: Seeds = None,
    out_file: Annotated[Path | None, out_option("ranking")] = None,
) -> None:
    """Full-ranking evaluation at scale: time, peak memory, share of the machine's matmul peak."""
    from fusionrec.bench.ranking import generator_config, ranking_scale

    if min(users, items, dim, k, history) < 1:
        raise ConfigError("--users, --items, --dim, --k and --history must be >= 1")
    out_file = default_out(out_file, "ranking")
    command = command_line(ctx)
    rows = []
    for s in parse_seeds(seed):
        rows += run_measure(partial(ranking_scale, users, items, dim, k, history, seed=s),
                            f"ranking {users:,} users x {items:,} items, seed {s}", suite="ranking", bench="ranking",
                            dataset="random-factors", seed=s, command=command, out=out_file,
                            generator=generator_config(users, items, dim, history, s))
    show("full-ranking evaluation", rows, ["users", "items", "seed", "seconds", "peak_rss_mb", "achieved_gflops",
                                           "machine_matmul_peak_gflops", "fraction_of_peak"], out_file)


@app.command("cv")
@friendly_errors
def cv(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option("--dataset", help="Catalog name, 'synthetic', or a dataset directory.")] = "ml-100k",
    data_dir: DataDir = None,
    models: Models = None,
    folds: Annotated[int, typer.Option("--folds", help="k-fold CV by user.")] = 5,
    seed: Seeds = None,
    out_file: Annotated[Path | None, out_option("cv")] = None,
    set_: Sets = None,
) -> None:
    """RMSE (and ranking metrics) of rating models by k-fold CV, one row per (model, seed)."""
    from fusionrec.bench.baselines import model_sets
    from fusionrec.bench.cv import DEFAULT_MODELS, cross_validation

    if folds < 2:
        raise ConfigError(f"--folds must be >= 2, got {folds}")
    root = data_root(data_dir, dataset)
    out_file = default_out(out_file, "cv")
    command = command_line(ctx, root)
    rows = []
    for s in parse_seeds(seed):
        for name in names(models, DEFAULT_MODELS):
            def on_fold(f: int, res: dict[str, float], name: str = name) -> None:
                extra = f", RMSE {res['RMSE']:.4f}" if "RMSE" in res else ""
                console.print(f"  {name} fold {f + 1}/{folds}: NDCG@10 {res['NDCG@10']:.4f}{extra} "
                              f"({res['train_seconds']:.1f} s)", highlight=False)

            rows += run_measure(partial(cross_validation, dataset, name, root, model_sets(name, set_ or []),
                                        folds=folds, seed=s, on_fold=on_fold),
                                f"{name} on {dataset}, {folds}-fold CV, seed {s}", suite="cv", bench="cv",
                                dataset=dataset, seed=s, data_dir=root, command=command, out=out_file)
    show(f"{folds}-fold CV on {dataset}", rows, ["model", "seed", "RMSE", "RMSE std over folds", "MAE", "NDCG@10",
                                                 "train_seconds", "peak_rss_mb"], out_file)


@app.command("ablation")
@friendly_errors
def ablation(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option("--dataset")],
    data_dir: DataDir = None,
    switches: Annotated[str | None, typer.Option("--switches", help="Comma list of fusion switches to turn off one at a time (default: every source the dataset has).")] = None,
    seed: Seeds = None,
    out_file: Annotated[Path | None, out_option("ablation")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="fusion.key=value settings for every variant")] = None,
) -> None:
    """The fusion model with each modality/source switched off, each variant in its own process."""
    from fusionrec.bench.baselines import ablation as run_ablation
    from fusionrec.bench.rows import append_row

    root = data_root(data_dir, dataset)
    out_file = default_out(out_file, "ablation")
    command = command_line(ctx, root)
    wanted = [s.strip() for s in switches.split(",")] if switches else None

    def on_row(row: dict[str, Any]) -> None:
        append_row(out_file, row)
        console.print(f"  {row['variant']} (seed {row['seed']}): NDCG@10 {row['NDCG@10']:.4f}", highlight=False)

    rows = []
    for s in parse_seeds(seed):
        with step(f"fusion ablation on {dataset}, seed {s}"):
            rows += run_ablation(dataset, root, set_ or [], wanted, seed=s, command=command, on_row=on_row)
    show(f"fusion ablation on {dataset} (loo, valid as history)", rows,
         ["variant", "seed", "NDCG@10", "HR@10", "vs full", "train_seconds", "peak_rss_mb"], out_file)


@app.command("report")
@friendly_errors
def report(
    markdown: Annotated[Path, typer.Option("--markdown", help="The markdown file holding the marked tables.")] = Path("BENCHMARKS.md"),
    results: Annotated[Path, typer.Option("--results", help="Folder of the results files.")] = Path("benchmarks/results"),
    check: Annotated[bool, typer.Option("--check", help="Change nothing; exit 1 naming the tables that are stale.")] = False,
) -> None:
    """Regenerate the tables of BENCHMARKS.md between <!-- bench:NAME --> markers from the result rows."""
    from fusionrec.bench.report import update_markdown
    from fusionrec.bench.tables import TABLES

    stale = update_markdown(markdown, TABLES, results, check=check)
    if check and stale:
        console.print(f"[bold red]stale:[/] {', '.join(stale)} in {markdown} differ from the rows in {results}; "
                      f"run 'fusionrec bench report' and commit the result", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    verb = "up to date" if not stale else f"rewrote {', '.join(stale)}"
    console.print(f"{markdown}: {verb}", highlight=False, soft_wrap=True)
