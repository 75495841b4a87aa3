"""bench report: tables regenerated between markers from the rows; --check names the stale ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fusionrec.bench.report import Column, Table, regenerate, render_table, update_markdown
from fusionrec.bench.rows import append_row
from fusionrec.cli import app
from fusionrec.errors import DataError, UnknownNameError

TABLE = Table("demo", suite="demo", where={"bench": "demo"}, group=("model",), order=("b", "a"),
              columns=(Column("NDCG@10", "NDCG@10"), Column("s", "train_seconds", "{:.1f}"),
                       Column("settings", lambda r: r.get("settings"), aggregate=False)),
              command="fusionrec bench demo")
TABLES = {"demo": TABLE}
PROSE = "# Benchmarks\n\nProse stays as written.\n\n<!-- bench:demo -->\nhand-written\n<!-- /bench:demo -->\n\nAfter.\n"


def _row(model: str, seed: int, ndcg: float, commit: str = "abcdef1234", dirty: bool = False,
         **extra: object) -> dict[str, object]:
    return {"suite": "demo", "bench": "demo", "model": model, "seed": seed, "NDCG@10": ndcg, "train_seconds": 1.0,
            "commit": commit, "dirty": dirty, **extra}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    d = tmp_path / "results"
    append_row(d / "demo.jsonl", _row("a", 0, 0.10))
    append_row(d / "demo.jsonl", _row("a", 1, 0.20))
    append_row(d / "demo.jsonl", _row("a", 0, 0.30, commit="1234567abc", dirty=True))  # seed 0 repeated: latest wins
    append_row(d / "demo.jsonl", _row("b", 0, 0.05, settings={"l2": 100}))
    append_row(d / "demo.jsonl", {**_row("c", 0, 0.9), "bench": "other"})  # filtered out by where
    return d


def test_table_aggregates_latest_row_per_seed_with_mean_std_n_seeds_and_provenance(results: Path) -> None:
    text = render_table(TABLE, results, results.parent)
    lines = text.splitlines()
    assert lines[0] == "| model | NDCG@10 | s | settings | seeds | rows |"
    b, a = lines[2], lines[3]  # declared order: b first
    assert b.startswith("| b | 0.0500 (1) | 1.0 (1) | l2=100 | 0 | [`abcdef1`](results/demo.jsonl#L4) |")
    # seed 0 -> 0.30 (line 3), seed 1 -> 0.20: mean 0.25, std 0.0707
    assert a.startswith("| a | 0.2500 ± 0.0707 (2) | 1.0 ± 0.0 (2) | — | 0, 1 |")
    assert "[`1234567`+dirty](results/demo.jsonl#L3)" in a and "[`abcdef1`](results/demo.jsonl#L2)" in a
    assert "| c |" not in text


def test_report_rewrites_only_between_markers_and_check_catches_a_stale_table(tmp_path: Path, results: Path) -> None:
    md = tmp_path / "BENCHMARKS.md"
    md.write_text(PROSE)
    assert update_markdown(md, TABLES, results, check=True) == ["demo"]
    assert md.read_text() == PROSE  # --check changes nothing
    assert update_markdown(md, TABLES, results) == ["demo"]
    new = md.read_text()
    assert new.startswith("# Benchmarks\n\nProse stays as written.\n\n<!-- bench:demo -->\n| model |")
    assert new.endswith("<!-- /bench:demo -->\n\nAfter.\n") and "hand-written" not in new
    assert update_markdown(md, TABLES, results, check=True) == []  # up to date
    append_row(results / "demo.jsonl", _row("b", 1, 0.07))  # a new row: the table is stale again
    assert update_markdown(md, TABLES, results, check=True) == ["demo"]


def test_cli_report_check_exits_nonzero_naming_the_stale_table(tmp_path: Path, results: Path, monkeypatch) -> None:
    import fusionrec.bench.tables as tables

    monkeypatch.setattr(tables, "TABLES", TABLES)
    md = tmp_path / "BENCHMARKS.md"
    md.write_text(PROSE)
    runner = CliRunner()
    args = ["bench", "report", "--markdown", str(md), "--results", str(results)]
    r = runner.invoke(app, [*args, "--check"])
    assert r.exit_code == 1 and "demo" in r.output and "stale" in r.output
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*args, "--check"])
    assert r.exit_code == 0 and "up to date" in r.output


def test_a_table_without_rows_says_how_to_make_them(tmp_path: Path) -> None:
    text, changed = regenerate("<!-- bench:demo -->\n<!-- /bench:demo -->", TABLES, tmp_path / "none", tmp_path)
    assert changed == ["demo"] and "No rows for this table yet" in text and "`fusionrec bench demo`" in text


def test_a_marker_quoted_in_prose_is_not_a_table(tmp_path: Path, results: Path) -> None:
    text = "Tables sit between `<!-- bench:NAME -->` lines.\n" + PROSE
    new, changed = regenerate(text, TABLES, results, results.parent)
    assert changed == ["demo"] and new.startswith("Tables sit between `<!-- bench:NAME -->` lines.\n# Benchmarks")


def test_unknown_and_unclosed_markers_are_errors(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="demo"):
        regenerate("<!-- bench:nope -->\nx\n<!-- /bench:nope -->", TABLES, tmp_path, tmp_path)
    with pytest.raises(DataError, match="never closed"):
        regenerate("<!-- bench:demo -->\nx\n", TABLES, tmp_path, tmp_path)


def test_declared_tables_name_existing_row_keys() -> None:
    from fusionrec.bench.tables import TABLES as DECLARED

    assert {"baselines-ml-100k", "ranking", "cv-ml-100k", "kg-linkpred", "kg-rec", "social-rec", "social-new-users",
            "explain-coverage"} <= set(DECLARED)
    for name, t in DECLARED.items():
        assert t.name == name and t.command.startswith("fusionrec bench ")
