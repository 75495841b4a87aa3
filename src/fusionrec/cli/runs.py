"""``fusionrec train``, ``recommend`` and ``evaluate``: the Run life cycle on raw ids."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from fusionrec.cli.common import (
    console,
    epoch_bar,
    friendly_errors,
    metrics_table,
    out,
    print_json,
    progress_bar,
    read_id_list,
    step,
)
from fusionrec.errors import ConfigError

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Folder holding the datasets (or $FUSIONREC_DATA).")]
KeepSide = Annotated[bool, typer.Option(
    "--keep-heldout-side-events",
    help="LEAKAGE: keep the side tables whole instead of the split's training view, so side events on "
         "held-out (user, item) pairs, after the split time and on cold items (and the tags derived from "
         "them) reach training. Only to measure that leak.")]


@friendly_errors
def train(
    dataset: Annotated[str, typer.Option("--dataset", help="Catalog name, 'synthetic', or a dataset directory.")],
    model: Annotated[str, typer.Option("--model", help="pop, itemknn, ease, puresvd, als, bpr, mf, ratingformer, ...")],
    out_dir: Annotated[Path, typer.Option("--out", help="Run directory to write.")],
    data_dir: DataDir = None,
    train_file: Annotated[Path | None, typer.Option("--train-file", help="Pre-split training interactions.")] = None,
    valid_file: Annotated[Path | None, typer.Option("--valid-file", help="Validation interactions (early stopping, tuning).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Model settings in TOML.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="key=value model setting (repeatable).")] = None,
    split: Annotated[str, typer.Option("--split", help="Without --train-file: loo, random-loo, temporal, random, cold-item, none (train on all).")] = "none",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split.")] = 0,
    tune: Annotated[bool, typer.Option("--tune/--no-tune", help="With a valid set: grid-search the settings not fixed by --config/--set.")] = True,
    init: Annotated[Path | None, typer.Option("--init", help="Start from the weights of this run (e.g. from 'fusionrec pretrain').")] = None,
    keep_heldout_side_events: KeepSide = False,
) -> None:
    """Train a model and save the run (weights, id maps, config, validation metrics).

    Torch models (and mf, kg: every model the one trainer trains) checkpoint every epoch into
    OUT.partial/; after a kill, the same command resumes from the last complete epoch. Under torchrun (``torchrun --nproc-per-node 2 -m fusionrec train ...``)
    the ranks train one model data-parallel and rank 0 writes the run.
    """
    from fusionrec.jobs import build_model, model_settings
    from fusionrec.models.torch_base import TorchRecommender
    from fusionrec.models.wrapper import unwrap
    from fusionrec.training.task import Trainable

    settings = model_settings(model, config, set_ or [])
    rec = build_model(model, settings)  # fail on a bad model/config before loading data
    is_torch = isinstance(unwrap(rec), TorchRecommender)
    if init is not None:
        if not is_torch:
            raise ConfigError(f"--init needs a torch model; {model!r} is not one")
        if not init.exists():
            raise ConfigError(f"--init {init}: no such run directory")
        rec.init_from = init
    rank, started = _start_distributed(rec)
    quiet = console.quiet, out.quiet
    console.quiet = out.quiet = quiet[0] or rank != 0  # one rank talks
    try:
        _train(rec, isinstance(unwrap(rec), Trainable), rank, dataset, model, out_dir, data_dir, train_file,
               valid_file, settings, split, seed, tune, keep_heldout_side_events)
    finally:
        console.quiet, out.quiet = quiet
        if started:
            import torch.distributed as dist

            dist.destroy_process_group()


@friendly_errors
def pretrain(
    dataset: Annotated[str, typer.Option("--dataset", help="Catalog name, 'synthetic', or a dataset directory.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Run directory to write (then: fusionrec train ... --init OUT).")],
    model: Annotated[str, typer.Option("--model", help="A model with a self-supervised stage: fusion.")] = "fusion",
    data_dir: DataDir = None,
    train_file: Annotated[Path | None, typer.Option("--train-file", help="Pre-split training interactions.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Model settings in TOML.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="key=value model setting (repeatable).")] = None,
    split: Annotated[str, typer.Option("--split", help="Without --train-file: pretrain on this split's training part.")] = "loo",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split.")] = 0,
    keep_heldout_side_events: KeepSide = False,
) -> None:
    """Self-supervised pretraining (content aligned with behaviour); fine-tune with 'train --init OUT'."""
    from fusionrec.data import catalog
    from fusionrec.data import splits as S
    from fusionrec.jobs import build_model, make_split, model_settings
    from fusionrec.run import Run, Stopwatch

    settings = model_settings(model, config, set_ or [])
    rec = build_model(model, {"pretrain.epochs": 20, "prior": False, **settings})
    if not hasattr(rec, "pretrain_only"):
        raise ConfigError(f"model {model!r} has no self-supervised stage; use --model fusion")
    with step(f"loading {dataset}"):
        data = catalog.load(dataset, data_dir)
    keep = keep_heldout_side_events
    train_part = (S.from_files(data, train_file, keep_heldout_side_events=keep).train if train_file is not None
                  else make_split(data, split, seed, keep_heldout_side_events=keep).train)
    rec.pretrain_only = True
    with step(f"pretraining {model} ({rec.config.pretrain.epochs} epochs) on {train_part.n_interactions:,} interactions"), \
            Stopwatch() as t:
        rec.fit(train_part)
    info = {"dataset": dataset, "split": "files" if train_file else split, "settings": settings, "stage": "pretrain",
            "train_seconds": t.seconds, "pretrain_log": rec.pretrain_log_}
    path = Run(rec, train_part.user_ids, train_part.item_ids, info).save(out_dir)
    last = rec.pretrain_log_[-1]["loss"] if rec.pretrain_log_ else float("nan")
    console.print(f"[green]✓[/] pretrained run saved to {path} ({t.seconds:.1f} s, final alignment loss {last:.3f}); "
                  f"fine-tune with: fusionrec train ... --model {model} --init {path}", highlight=False)


def _start_distributed(rec: object) -> tuple[int, bool]:
    """Join the torchrun process group when launched by torchrun; returns ``(rank, started_here)``.

    gloo on the CPU, NCCL when the model trains on CUDA (one GPU per local rank).
    """
    import os

    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return 0, False
    if dist.is_initialized():
        return dist.get_rank(), False
    device = getattr(getattr(rec, "config", None), "device", "cpu")
    gpu = device != "cpu" and torch.cuda.is_available()
    if gpu:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if gpu else "gloo")
    return dist.get_rank(), True


def _train(rec, trained, rank, dataset, model, out_dir, data_dir, train_file, valid_file, settings, split, seed,  # type: ignore[no-untyped-def]
           tune, keep_side) -> None:
    import dataclasses
    import shutil

    from fusionrec.data import catalog
    from fusionrec.data import splits as S
    from fusionrec.jobs import make_split, train_run
    from fusionrec.training.trainer import LOG_FILE

    main = rank == 0
    with step(f"loading {dataset}"):
        data = catalog.load(dataset, data_dir)
    if train_file is not None:
        parts = S.from_files(data, train_file, valid=valid_file, keep_heldout_side_events=keep_side)
        split_name = "files"
    else:
        parts = make_split(data, split, seed, keep_heldout_side_events=keep_side)
        split_name = split
        if valid_file is not None:
            vs = S.from_files(data, valid_file)
            parts.valid = vs.train

    def on_trial(trial: dict[str, object], score: float) -> None:
        console.print(f"  tuning {model} {trial}: valid NDCG@10 {score:.4f}", highlight=False)

    partial = out_dir.parent / f"{out_dir.name}.partial"
    info = {"dataset": dataset, "data_dir": str(data_dir) if data_dir else None, "split": split_name,
            "train_file": str(train_file) if train_file else None,
            "valid_file": str(valid_file) if valid_file else None, "settings": settings}
    if keep_side:
        info["keep_heldout_side_events"] = True
    if parts.side_events_dropped is not None and parts.side_events_dropped.total:
        info["side_events_dropped"] = dataclasses.asdict(parts.side_events_dropped)
    kwargs = {"info": info, "tune_settings": settings if tune else None, "on_trial": on_trial}
    what = f"training {model} on {parts.train.n_interactions:,} interactions"
    if trained:  # by the one trainer: a progress bar over epochs, checkpoints in OUT.partial
        with epoch_bar(what, rec.config.epochs, rec.valid_metric) as on_epoch:
            run = train_run(rec, parts.train, parts.valid, checkpoint_dir=partial, on_epoch=on_epoch, **kwargs)
    else:
        with step(what):
            run = train_run(rec, parts.train, parts.valid, **kwargs)
    if main:
        path = run.save(out_dir)
        if (partial / LOG_FILE).exists():
            shutil.copyfile(partial / LOG_FILE, path / LOG_FILE)
        shutil.rmtree(partial, ignore_errors=True)
        if train_file is None and split != "none":
            S.write_split(parts, path / "split")
            console.print(f"split files in {path / 'split'}", highlight=False)
        console.print(f"[green]✓[/] run saved to {path} ({run.info['train_seconds']:.2f} s)", highlight=False)
        if run.metrics:
            rows = [{"metric": k, "value": v} for k, v in run.metrics.items()]
            out.print(metrics_table("validation", rows, ["metric", "value"]))
    _barrier()


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _load_events(path: Path | None):  # type: ignore[no-untyped-def]
    if path is None:
        return None
    from fusionrec.data.io import read_interactions_file

    return read_interactions_file(path)


def _add_new_rows(run, new_items: Path | None, new_users: Path | None) -> None:  # type: ignore[no-untyped-def]
    """Cold start: profiles of new users, then new items, added to a loaded run (not saved)."""
    from fusionrec.data.io import read_table

    if new_users is not None:
        n = run.add_users(read_table(new_users), source=str(new_users))
        console.print(f"{n:,} new user profile(s) from {new_users}", highlight=False)
    if new_items is not None:
        table = read_table(new_items)
        for col, kind in getattr(getattr(run.model, "item_content_", None), "schema", {}).items():
            if kind in ("image", "audio") and col in table.columns:  # media paths are relative to the file
                table[col] = [None if not isinstance(v, str) or not v else str((new_items.parent / v).resolve())
                              for v in table[col]]
        n = run.add_items(table, source=str(new_items))
        console.print(f"{n:,} new item(s) from {new_items}", highlight=False)


@friendly_errors
def recommend(
    run_dir: Annotated[Path, typer.Option("--run", help="Run directory from 'fusionrec train'.")],
    users: Annotated[str, typer.Option("--users", help="File with one user id a line, or 'all'.")],
    k: Annotated[int, typer.Option("--k", help="List length.")],
    out_file: Annotated[Path, typer.Option("--out", help="Output TSV: user<TAB>item1,item2,...")],
    history: Annotated[Path | None, typer.Option("--history", help="Extra events (user,item,timestamp) used at inference.")] = None,
    candidates: Annotated[Path | None, typer.Option("--candidates", help="One item id a line: rank only these.")] = None,
    new_items: Annotated[Path | None, typer.Option("--new-items", help="Items table (csv/tsv/parquet: item + the dataset's item columns) of items added after training; content models score them.")] = None,
    new_users: Annotated[Path | None, typer.Option("--new-users", help="Users table (user + profile columns) of users added after training; give their events with --history.")] = None,
) -> None:
    """Write top-K lists with raw ids, best first, never an item the user already has."""
    from fusionrec.run import Run, write_recs

    if k <= 0:
        raise ConfigError(f"--k must be a positive integer, got {k}")
    run = Run.load(run_dir)
    _add_new_rows(run, new_items, new_users)
    events = _load_events(history)
    cands = read_id_list(candidates, "item") if candidates is not None else None
    if users == "all":
        known = run.user_ids.ids[: run.model.train_matrix_.shape[0]]
        has = np.diff(run.model.train_matrix_.indptr) > 0
        user_list = [str(u) for u in known[has]]
        if events is not None:
            seen = set(user_list)
            user_list += [u for u in dict.fromkeys(events["user"].astype(str)) if u not in seen]
    else:
        user_list = read_id_list(Path(users), "user")
    with progress_bar("recommending", total=len(user_list)) as advance:
        recs = run.recommend(user_list, k, history=events, candidates=cands, progress=advance)
    write_recs(recs, out_file)
    console.print(f"[green]✓[/] {len(recs):,} lists written to {out_file}", highlight=False)


@friendly_errors
def evaluate(
    run_dir: Annotated[Path, typer.Option("--run", help="Run directory from 'fusionrec train'.")],
    test_file: Annotated[Path, typer.Option("--test-file", help="Held-out events: user,item,timestamp[,rating].")],
    k: Annotated[list[int] | None, typer.Option("--k", help="Cut-offs, e.g. --k 10 20.")] = None,
    history: Annotated[Path | None, typer.Option("--history", help="Extra events the model may use (and must not recommend).")] = None,
    candidates: Annotated[Path | None, typer.Option("--candidates", help="One item id a line: rank only these.")] = None,
) -> None:
    """Full-ranking metrics of a run on a test file: a table, then one JSON object."""
    from fusionrec.evaluation import evaluate_run
    from fusionrec.run import Run

    ks = sorted(set(k or [10, 20]))
    if ks[0] <= 0:
        raise ConfigError(f"--k values must be positive integers, got {ks}")
    run = Run.load(run_dir)
    test_raw = _load_events(test_file)
    if test_raw is None or len(test_raw) == 0:
        raise ConfigError(f"test file {test_file} has no events")
    cands = read_id_list(candidates, "item") if candidates is not None else None
    with progress_bar("ranking", total=test_raw["user"].nunique()) as advance:
        res = evaluate_run(run, test_raw, ks, history=_load_events(history), candidates=cands, progress=advance,
                           test_source=str(test_file), history_source=str(history))
    metrics = dict(res.metrics)
    rows = [{"metric": name, "value": v} for name, v in metrics.items()]
    out.print(metrics_table(f"{run.info.get('model')} on {test_file.name}", rows, ["metric", "value"]))
    print_json({name: round(v, 6) if isinstance(v, float) else v for name, v in metrics.items()})
