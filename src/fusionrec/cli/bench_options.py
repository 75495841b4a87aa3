"""What every ``fusionrec bench`` command shares: options, seeds, the data dir, the recorded command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from fusionrec.cli.common import console, metrics_table, out, step
from fusionrec.errors import ConfigError

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Folder holding the datasets (default: $FUSIONREC_DATA).")]
Seeds = Annotated[list[str] | None, typer.Option("--seed", help="Seed(s): repeat --seed or give a list, e.g. --seed 0,1,2.")]
Sets = Annotated[list[str] | None, typer.Option("--set", help="model.key=value setting (repeatable), e.g. ease.l2=100.")]
Models = Annotated[str | None, typer.Option("--models", help="Comma-separated model names.")]


def out_option(suite: str) -> Any:
    return typer.Option("--out", help=f"Results file to append rows to (default benchmarks/results/{suite}.jsonl).")


def default_out(out_file: Path | None, suite: str) -> Path:
    from fusionrec.bench import results_file

    return out_file if out_file is not None else results_file(suite)


def parse_seeds(values: list[str] | None) -> list[int]:
    """``--seed 0 --seed 1`` or ``--seed 0,1,2`` -> ``[0, 1, 2]`` (default ``[0]``)."""
    seeds: list[int] = []
    for v in values or ["0"]:
        for part in str(v).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                seeds.append(int(part))
            except ValueError:
                raise ConfigError(f"--seed takes integers (repeated or comma-separated), got {part!r}") from None
    if not seeds:
        raise ConfigError("--seed got no seed; e.g. --seed 0 or --seed 0,1,2")
    return list(dict.fromkeys(seeds))


def names(text: str | None, default: tuple[str, ...]) -> list[str]:
    got = [m.strip() for m in text.split(",") if m.strip()] if text else list(default)
    if not got:
        raise ConfigError("--models names no model; give a comma-separated list, e.g. --models pop,ease")
    return got


def data_root(data_dir: Path | None, dataset: str | None = None) -> Path | None:
    """The data directory (``--data-dir`` or ``$FUSIONREC_DATA``); exit 0 with the reason when the
    catalog ``dataset`` is not in it."""
    from fusionrec.bench import dataset_or_skip
    from fusionrec.data.catalog import CATALOG, resolve_data_dir

    root = resolve_data_dir(data_dir)
    if dataset is not None and dataset in CATALOG:
        dataset_or_skip(dataset, root)
    return root


def command_line(ctx: typer.Context, data_dir: Path | None = None) -> str:
    """The running command as one shell line, runnable from the repo root: the subcommand and every
    option given on the command line (``--data-dir`` resolved, so ``$FUSIONREC_DATA`` is spelt out)."""
    from typer.core import TyperArgument

    from fusionrec.bench import shell_command

    words: list[object] = ["fusionrec", *ctx.command_path.split()[1:]]
    for p in ctx.command.params:
        name = p.name or ""
        if getattr(p, "hidden", False) or name not in ctx.params:
            continue
        v: Any = data_dir if name == "data_dir" and data_dir is not None else ctx.params[name]
        source = ctx.get_parameter_source(name)
        if v is None or (isinstance(v, (list, tuple)) and not v) or (
                source is not None and source.name == "DEFAULT" and name != "data_dir"):
            continue
        if isinstance(p, TyperArgument):
            words.append(v)
        elif getattr(p, "is_flag", False):
            if v:
                words.append(p.opts[0])
            elif p.secondary_opts:
                words.append(p.secondary_opts[0])
        else:
            for x in (v if getattr(p, "multiple", False) else [v]):
                words += [p.opts[0], x]
    return shell_command(words)


def show(title: str, rows: list[dict[str, Any]], columns: list[str], out_file: Path) -> None:
    out.print(metrics_table(title, rows, [c for c in columns if any(c in r for r in rows)]))
    console.print(f"{len(rows)} row(s) appended to {out_file}", highlight=False)


def run_measure(fn: Callable[[], Any], what: str, **kw: Any) -> list[dict[str, Any]]:
    """:func:`fusionrec.bench.measure` under a spinner on stderr."""
    from fusionrec.bench import measure

    with step(what):
        return measure(fn, **kw)
