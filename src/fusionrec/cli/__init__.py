"""The ``fusionrec`` command: a thin layer over the Python API (see ``fusionrec --help``)."""

from __future__ import annotations

import sys

import typer

from fusionrec.cli import bench as _bench
from fusionrec.cli import compare as _compare
from fusionrec.cli import datasets as _datasets
from fusionrec.cli import experiments as _experiments
from fusionrec.cli import explain as _explain
from fusionrec.cli import runs as _runs
from fusionrec.cli.common import normalise_argv

app = typer.Typer(name="fusionrec", help="Recommenders that fuse behaviour, content, social and KG signals.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.add_typer(_datasets.app, name="datasets")
app.command("train")(_runs.train)
app.command("pretrain")(_runs.pretrain)
app.command("recommend")(_runs.recommend)
app.command("evaluate")(_runs.evaluate)
app.command("compare")(_compare.compare)
app.command("explain")(_explain.explain)
app.command("cv")(_experiments.cv)
app.command("leaderboard")(_experiments.leaderboard)
app.add_typer(_bench.app, name="bench")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = normalise_argv(list(sys.argv[1:] if argv is None else argv))
    app(args=args, prog_name="fusionrec")


__all__ = ["app", "main"]
