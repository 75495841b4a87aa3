"""``fusionrec bench models|compare|cold|lastfm|speed``: the headline suites of the flagship.

Each (model, seed) trains in a fresh process (``bench one-row``), so that a row's peak memory is
its own; the parent appends the row (with its provenance) to ``benchmarks/results/<suite>.jsonl``.
"""

from __future__ import annotations

import json
import subprocess
import sys
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
    show,
)
from fusionrec.cli.common import console, friendly_errors, print_json, step
from fusionrec.errors import ConfigError

Threads = Annotated[int, typer.Option("--threads", help="torch threads of each training process (0 = torch's default).")]

#: suite -> "module:function" that returns one row's metrics (bench one-row)
ONE_ROW = {"models": "fusionrec.bench.baselines:baseline", "lastfm": "fusionrec.bench.lastfm:lastfm",
           "speed": "fusionrec.bench.speed:speed", "cold": "fusionrec.bench.cold:cold"}


def one_row_in_subprocess(suite: str, kwargs: dict[str, Any], *, dataset: str, seed: int, command: str,
                          data_dir: Path | None, threads: int, generator: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row measured in a fresh process; returns the row (provenance included)."""
    from fusionrec.bench.baselines import child_env

    cmd = [sys.executable, "-m", "fusionrec", "bench", "one-row", "--suite", suite, "--dataset", dataset,
           "--seed", str(seed), "--args", json.dumps(kwargs), "--command", command, "--threads", str(threads)]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    if generator is not None:
        cmd += ["--generator", json.dumps(generator)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=child_env())
    if proc.returncode != 0:
        raise RuntimeError(f"{suite} row ({kwargs}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def register(app: typer.Typer) -> None:
    """Add the commands of this module to ``fusionrec bench``."""

    @app.command("one-row", hidden=True)
    @friendly_errors
    def one_row(
        suite: Annotated[str, typer.Option("--suite")],
        dataset: Annotated[str, typer.Option("--dataset")],
        seed: Annotated[int, typer.Option("--seed")],
        args: Annotated[str, typer.Option("--args", help="JSON keyword arguments of the suite's function.")],
        command: Annotated[str, typer.Option("--command")],
        data_dir: DataDir = None,
        threads: Threads = 0,
        generator: Annotated[str | None, typer.Option("--generator")] = None,
    ) -> None:
        """One row of a suite measured in this process, printed as JSON."""
        import importlib

        import torch

        from fusionrec.bench import measure

        if suite not in ONE_ROW:
            raise ConfigError(f"unknown suite {suite!r}; known: {sorted(ONE_ROW)}")
        if threads:
            torch.set_num_threads(threads)
        module, fn = ONE_ROW[suite].split(":")
        func = getattr(importlib.import_module(module), fn)
        kwargs = json.loads(args)
        row = measure(lambda: func(**kwargs), suite=suite, bench=suite, dataset=dataset, seed=seed,
                      data_dir=data_root(data_dir), command=command,
                      generator=json.loads(generator) if generator else None)[0]
        print_json(row)

    @app.command("models")
    @friendly_errors
    def models_cmd(
        ctx: typer.Context,
        dataset: Annotated[str, typer.Option("--dataset", help="Catalog name or a dataset directory.")],
        data_dir: DataDir = None,
        models: Models = None,
        seed: Seeds = None,
        threads: Threads = 0,
        out_file: Annotated[Path | None, out_option("models")] = None,
        set_: Sets = None,
    ) -> None:
        """Every model with its defaults on the leave-one-out split (test users get their valid event as
        history), one process per (model, seed); rows keep per-user NDCG@10 for 'bench compare'."""
        from fusionrec.bench.models import HEADLINE_MODELS
        from fusionrec.bench.rows import append_row

        root = data_root(data_dir, dataset)
        out_file = default_out(out_file, "models")
        command = command_line(ctx, root)
        rows = []
        for name in names(models, HEADLINE_MODELS):
            for s in parse_seeds(seed):
                with step(f"{name} on {dataset}, seed {s} (own process)"):
                    row = one_row_in_subprocess("models", {"dataset": dataset, "model": name,
                                                           "data_dir": str(root) if root else None,
                                                           "sets": set_ or [], "seed": s},
                                                dataset=dataset, seed=s, command=command, data_dir=root,
                                                threads=threads)
                append_row(out_file, row)
                rows.append(row)
                console.print(f"  {name} seed {s}: NDCG@10 {row['NDCG@10']:.4f} (valid {row['valid_NDCG@10']:.4f})",
                              highlight=False)
        show(f"models on {dataset} (loo, valid as history)", rows,
             ["model", "seed", "NDCG@10", "HR@10", "valid_NDCG@10", "seconds_per_epoch", "train_seconds",
              "score_ms_per_user", "peak_rss_mb"], out_file)

    @app.command("compare")
    @friendly_errors
    def compare_cmd(
        ctx: typer.Context,
        dataset: Annotated[str, typer.Option("--dataset")],
        model: Annotated[str, typer.Option("--model", help="The model compared with every other one.")] = "fusion",
        suite: Annotated[str, typer.Option("--suite", help="Rows to compare: models or lastfm.")] = "models",
        n_boot: Annotated[int, typer.Option("--n-boot")] = 10_000,
        data_dir: DataDir = None,
        out_file: Annotated[Path | None, out_option("compare")] = None,
    ) -> None:
        """Paired bootstrap 95% intervals of MODEL minus each other model (per-user NDCG@10 averaged over
        seeds), from the rows of a suite."""
        from fusionrec.bench import measure, results_file
        from fusionrec.bench.models import comparisons, read_rows
        from fusionrec.bench.rows import append_row

        root = data_root(data_dir, dataset)
        out_file = default_out(out_file, "compare")
        rows = read_rows(results_file(suite))
        got = measure(lambda: [{**r, "suite_compared": suite} for r in comparisons(
                          rows, dataset, model, suite_bench=suite, n_boot=n_boot)],
                      suite="compare", bench="compare", dataset=dataset, seed=0, data_dir=root,
                      command=command_line(ctx, root))
        for r in got:
            append_row(out_file, r)
        show(f"{model} vs every other model on {dataset} ({suite} rows)", got,
             ["versus", f"{model} mean", "versus mean", "difference", "low", "high", "share_below_zero"], out_file)

    @app.command("cold")
    @friendly_errors
    def cold_cmd(
        ctx: typer.Context,
        data_dir: DataDir = None,
        bench_dir: Annotated[Path, typer.Option("--bench-dir", help="Folder holding evalkit.py.")] = Path("../shared/bench"),
        model: Annotated[str, typer.Option("--model")] = "fusion",
        seed: Seeds = None,
        threads: Threads = 0,
        work: Annotated[Path, typer.Option("--work", help="Scratch folder (splits, lists).")] = Path("bench-out/cold"),
        out_file: Annotated[Path | None, out_option("cold")] = None,
        set_: Sets = None,
    ) -> None:
        """Cold items on ml-100k (evalkit's cold-item split): content-map settings chosen on valid cold items of
        their own, then test Recall@20 scored by evalkit."""
        from fusionrec.bench.rows import append_row

        root = data_root(data_dir, "ml-100k")
        if not (bench_dir / "evalkit.py").exists():
            console.print(f"skipped: {bench_dir / 'evalkit.py'} not found (give --bench-dir)", highlight=False)
            raise typer.Exit(0)
        out_file = default_out(out_file, "cold")
        work.mkdir(parents=True, exist_ok=True)
        command = command_line(ctx, root)
        rows = []
        for s in parse_seeds(seed):
            with step(f"{model} on ml-100k cold items, seed {s} (own process)"):
                row = one_row_in_subprocess("cold", {"data_dir": str(root), "bench_dir": str(bench_dir.resolve()),
                                                     "seed": s, "sets": set_ or [], "work": str(work.resolve()),
                                                     "model_name": model},
                                            dataset="ml-100k", seed=s, command=command, data_dir=root, threads=threads)
            append_row(out_file, row)
            rows.append(row)
        show("cold items on ml-100k (evalkit)", rows, ["model", "seed", "Recall@20", "NDCG@20", "Recall@10",
                                                        "valid_recall@20", "train_seconds", "peak_rss_mb"], out_file)

    @app.command("lastfm")
    @friendly_errors
    def lastfm_cmd(
        ctx: typer.Context,
        data_dir: DataDir = None,
        models: Annotated[str | None, typer.Option("--models", help="Comma list of fusion, ease, als, ease+tags, als+tags.")] = None,
        seed: Seeds = None,
        threads: Threads = 0,
        out_file: Annotated[Path | None, out_option("lastfm")] = None,
        set_: Sets = None,
    ) -> None:
        """lastfm-2k (random leave-one-out, side events cut to the training view): fusion with every source,
        and EASE / ALS on the listens and on the listens with the tagging."""
        from fusionrec.bench.lastfm import VARIANTS
        from fusionrec.bench.rows import append_row

        root = data_root(data_dir, "lastfm-2k")
        out_file = default_out(out_file, "lastfm")
        command = command_line(ctx, root)
        rows = []
        for variant in names(models, tuple(VARIANTS)):
            for s in parse_seeds(seed):
                with step(f"{variant} on lastfm-2k, seed {s} (own process)"):
                    row = one_row_in_subprocess("lastfm", {"variant": variant, "data_dir": str(root), "seed": s,
                                                           "sets": set_ or []},
                                                dataset="lastfm-2k", seed=s, command=command, data_dir=root,
                                                threads=threads)
                append_row(out_file, row)
                rows.append(row)
                console.print(f"  {variant} seed {s}: NDCG@10 {row['NDCG@10']:.4f}", highlight=False)
        show("lastfm-2k (random leave-one-out, valid as history)", rows,
             ["model", "seed", "NDCG@10", "HR@10", "valid_NDCG@10", "train_seconds", "peak_rss_mb"], out_file)

    @app.command("speed")
    @friendly_errors
    def speed_cmd(
        ctx: typer.Context,
        users: Annotated[int, typer.Option("--users")] = 20_000,
        items: Annotated[int, typer.Option("--items")] = 12_000,
        events: Annotated[float, typer.Option("--mean-events", help="Mean events per user.")] = 10.0,
        models: Annotated[str | None, typer.Option("--models")] = None,
        seed: Seeds = None,
        threads: Threads = 0,
        out_file: Annotated[Path | None, out_option("speed")] = None,
        set_: Sets = None,
    ) -> None:
        """A model with its defaults on a synthetic world of the given size: s/epoch, NDCG@10, ms to score a user."""
        from fusionrec.bench.rows import append_row
        from fusionrec.bench.speed import world_config

        if min(users, items) < 10 or events <= 0:
            raise ConfigError("--users and --items must be >= 10 and --mean-events > 0")
        out_file = default_out(out_file, "speed")
        command = command_line(ctx)
        rows = []
        for s in parse_seeds(seed):
            for name in names(models, ("sasrec", "fusion")):
                with step(f"{name} on the synthetic world {users:,} x {items:,}, seed {s} (own process)"):
                    row = one_row_in_subprocess(
                        "speed", {"users": users, "items": items, "mean_events": events, "seed": s,
                                  "model_name": name, "sets": set_ or []},
                        dataset="synthetic", seed=s, command=command, data_dir=None, threads=threads,
                        generator=world_config(users, items, events, s))
                append_row(out_file, row)
                rows.append(row)
        show(f"synthetic world {users:,} x {items:,}", rows, ["model", "seed", "seconds_per_epoch", "NDCG@10",
                                                               "valid_NDCG@10", "score_ms_per_user", "peak_rss_mb"],
             out_file)
