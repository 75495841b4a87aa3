"""Shared CLI plumbing: console, error reporting, progress bars, argv normalisation."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from fusionrec.errors import FusionrecError

console = Console(stderr=True)
#: tables go to stdout; piped to a file or a log (no terminal to measure), they get room for their columns
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)

F = TypeVar("F", bound=Callable[..., Any])

#: flags that take several values after one flag (``--k 10 20``, ``--set a=1 b=2``)
MULTI_VALUE_FLAGS = ("--k", "--set")


def normalise_argv(argv: list[str]) -> list[str]:
    """Turn ``--k 10 20`` into ``--k 10 --k 20`` (click takes one value per flag)."""
    res: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        res.append(tok)
        i += 1
        if tok in MULTI_VALUE_FLAGS and i < len(argv):
            res.append(argv[i])
            i += 1
            while i < len(argv) and not argv[i].startswith("--"):
                res += [tok, argv[i]]
                i += 1
    return res


def friendly_errors(fn: F) -> F:
    """Print fusionrec errors as one red line and exit 2, instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FusionrecError as e:
            console.print(f"[bold red]error:[/] {e}", highlight=False)
            raise typer.Exit(2) from None
        except FileNotFoundError as e:
            console.print(f"[bold red]error:[/] file not found: {e.filename or e}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)``."""
    with Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False,
                  disable=not console.is_terminal and total is None) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)


@contextmanager
def epoch_bar(description: str, epochs: int, metric: str) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A progress bar over training epochs showing the loss and the validation metric.

    Yields the ``on_epoch(record)`` callback the trainer calls after each epoch. Without a terminal
    (a log file), each epoch is also printed as one line.
    """
    with Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                  console=console, transient=False) as prog:
        task = prog.add_task(description, total=epochs, stats="")

        def on_epoch(rec: dict[str, Any]) -> None:
            stats = f"loss {rec['loss']:.4f}"
            if metric in rec.get("valid", {}):
                stats += f"  valid {metric} {rec['valid'][metric]:.4f}"
            if rec.get("early_stop"):
                stats += "  (early stop)"
            prog.update(task, completed=rec["epoch"], stats=stats)
            if "resumed_from" in rec:
                console.print(f"resumed after epoch {rec['resumed_from']} (checkpoint)", highlight=False)
            if not console.is_terminal:
                console.print(f"epoch {rec['epoch']}/{epochs}: {stats}", highlight=False)

        yield on_epoch
    console.print(f"[green]✓[/] {description}", highlight=False)


@contextmanager
def step(description: str) -> Iterator[None]:
    """A spinner for a step without a known length (training a closed-form model, loading)."""
    with console.status(description):
        yield
    console.print(f"[green]✓[/] {description}", highlight=False)


def metrics_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    t = Table(title=title, show_lines=False)
    for c in columns:
        numeric = all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows)
        t.add_column(c, justify="right" if numeric else "left")
    for r in rows:
        t.add_row(*[_fmt(r.get(c)) for c in columns])
    return t


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"
    return "" if v is None else str(v)


def print_json(obj: Any) -> None:
    out.print(json.dumps(obj), highlight=False, markup=False)


def read_id_list(path: Path, what: str) -> list[str]:
    """One id a line (a first line equal to ``what`` is taken as a header)."""
    if not path.exists():
        from fusionrec.errors import DataError

        raise DataError(f"{what} file {path} does not exist")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    lines = [ln.split("\t")[0].split(",")[0] for ln in lines if ln]
    if lines and lines[0].lower() == what:
        lines = lines[1:]
    if not lines:
        from fusionrec.errors import DataError

        raise DataError(f"{what} file {path} is empty; write one {what} id a line")
    return lines


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
