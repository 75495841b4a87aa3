"""Tables generated from result rows, between markers in BENCHMARKS.md.

A :class:`Table` declares which rows it shows (a suite's file and a filter), how they are grouped
(one line per group, e.g. per model), its :class:`Column`\\ s and their number format. Over the seeds of
a group (the latest row per (group, seed) when a measurement was repeated) each numeric column
shows ``mean ± std (n)``; then come the seeds and a link to each row's provenance (short commit,
``+dirty`` when the tree had uncommitted changes).

In the markdown file a table sits between the lines ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``
(each marker alone on its line, so prose may quote a marker);
:func:`update_markdown` rewrites only what lies between such markers, so the prose stays as written.

Examples
--------
>>> t = Table("demo", suite="demo", group=("model",), columns=(Column("NDCG@10", "NDCG@10"),))
>>> rows = [{"model": "pop", "seed": 0, "NDCG@10": 0.04, "commit": "ae2b7970", "dirty": False, "_line": 1}]
>>> print(render_rows(t, rows, "results/demo.jsonl"))
| model | NDCG@10 | seeds | rows |
|---|---|---|---|
| pop | 0.0400 (1) | 0 | [`ae2b797`](results/demo.jsonl#L1) |
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.bench.rows import RESULTS_DIR, read_rows, results_file
from fusionrec.errors import DataError, unknown_name

Row = Mapping[str, Any]
#: a row key (``"a.b"`` reaches into nested objects) or a function of the row
Getter = str | Callable[[Row], Any]
MISSING = "—"


@dataclass(frozen=True)
class Column:
    """One column: its header, where its value comes from, and how it is shown.

    ``aggregate``: numbers are shown as ``mean ± std (n)`` over the group's seeds; otherwise the
    value is shown as it is (distinct values over the seeds joined by " / "), e.g. chosen settings.
    """

    header: str
    value: Getter
    fmt: str = "{:.4f}"
    aggregate: bool = True


@dataclass(frozen=True)
class Table:
    """A table of BENCHMARKS.md, generated from ``benchmarks/results/<suite>.jsonl``.

    Parameters
    ----------
    name : the marker name (``<!-- bench:NAME -->``).
    suite : the results file's name.
    group : row keys (or getters) whose values make one table line; they are the first columns.
    columns : the measured columns.
    where : rows kept: row key -> required value (a tuple: any of these values).
    order : preferred order of the first group key's values; other groups follow in file order.
    group_headers : headers of the group columns (default: the keys).
    command : how to produce the rows, shown while there are none.
    """

    name: str
    suite: str
    group: tuple[Getter, ...]
    columns: tuple[Column, ...]
    where: Mapping[str, Any] = field(default_factory=dict)
    order: tuple[Any, ...] = ()
    group_headers: tuple[str, ...] = ()
    command: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[\w.-]+", self.name):
            raise ValueError(f"Table.name must be letters, digits, '_', '.', '-'; got {self.name!r}")
        if self.group_headers and len(self.group_headers) != len(self.group):
            raise ValueError(f"table {self.name}: {len(self.group_headers)} group_headers for "
                             f"{len(self.group)} group keys")


def get(row: Row, key: Getter) -> Any:
    """``row[key]``; ``"a.b"`` is ``row["a"]["b"]`` when ``row`` has no key ``"a.b"``; None when absent."""
    if callable(key):
        return key(row)
    if key in row:
        return row[key]
    value: Any = row
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _matches(row: Row, where: Mapping[str, Any]) -> bool:
    for key, want in where.items():
        got = get(row, key)
        if isinstance(want, tuple) and not isinstance(got, tuple):
            if got not in want:
                return False
        elif got != want:
            return False
    return True


def _show(value: Any, fmt: str) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        if isinstance(value, Mapping):
            return ", ".join(f"{k}={v}" for k, v in value.items()) or MISSING
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value) or MISSING
        return str(value)
    return fmt.format(value)


def _cell(col: Column, rows: Sequence[Row]) -> str:
    values = [get(r, col.value) for r in rows]
    if col.aggregate:
        nums = [float(v) for v in values
                if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                and np.isfinite(v)]
        if not nums:
            return MISSING
        mean = float(np.mean(nums))
        if len(nums) == 1:
            return f"{col.fmt.format(mean)} (1)"
        return f"{col.fmt.format(mean)} ± {col.fmt.format(float(np.std(nums, ddof=1)))} ({len(nums)})"
    shown = list(dict.fromkeys(_show(v, col.fmt) for v in values))
    return " / ".join(shown)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _provenance(rows: Sequence[Row], link: str) -> str:
    """One link per distinct (commit, dirty), to the latest row with it: `` [`ae2b797`+dirty](file#L12) ``."""
    latest: dict[tuple[Any, Any], int] = {}
    for r in rows:
        latest[(r.get("commit"), r.get("dirty"))] = max(latest.get((r.get("commit"), r.get("dirty")), 0), r["_line"])
    out = []
    for (commit, dirty), line in latest.items():
        label = f"`{commit[:7]}`" if commit else "no git"
        out.append(f"[{label}{'+dirty' if dirty else ''}]({link}#L{line})")
    return " ".join(out)


def _key(values: Iterable[Any]) -> str:
    return json.dumps(list(values), sort_keys=True, default=str)


def render_rows(table: Table, rows: Sequence[Row], link: str) -> str:
    """The markdown table of ``rows`` (already read, each with ``_line``); ``link`` is the results file's
    path as the markdown file should link it."""
    kept = [r for r in rows if _matches(r, table.where)]
    if not kept:
        how = f"; run `{table.command}`" if table.command else ""
        return f"_No rows for this table yet in `{link}`{how}._"
    latest: dict[str, dict[Any, Row]] = {}  # group key -> seed -> latest row
    labels: dict[str, list[Any]] = {}
    for r in kept:  # file order: a later row replaces an earlier one of the same (group, seed)
        gv = [get(r, g) for g in table.group]
        k = _key(gv)
        labels.setdefault(k, gv)
        latest.setdefault(k, {})[json.dumps(r.get("seed"))] = r
    rank = {_key([v]): i for i, v in enumerate(table.order)}
    keys = sorted(latest, key=lambda k: rank.get(_key(labels[k][:1]), len(rank)))  # stable: file order after
    headers = [*(table.group_headers or [g if isinstance(g, str) else "group" for g in table.group]),
               *(c.header for c in table.columns), "seeds", "rows"]
    lines = ["| " + " | ".join(_escape(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    for k in keys:
        by_seed = latest[k]
        group_rows = sorted(by_seed.values(), key=lambda r: (r.get("seed") is None, r.get("seed") or 0))
        seeds = ", ".join(str(r.get("seed")) for r in group_rows if r.get("seed") is not None) or MISSING
        cells = [*(_show(v, "{}") for v in labels[k]), *(_cell(c, group_rows) for c in table.columns), seeds,
                 _provenance(group_rows, link)]
        lines.append("| " + " | ".join(_escape(c) if i < len(cells) - 1 else c for i, c in enumerate(cells)) + " |")
    return "\n".join(lines)


def render_table(table: Table, results_dir: str | Path = RESULTS_DIR, markdown_dir: str | Path = ".") -> str:
    """``table`` from its results file; links are relative to ``markdown_dir`` (where the .md lies)."""
    path = results_file(table.suite, results_dir)
    link = Path(os.path.relpath(Path(path).resolve(), Path(markdown_dir).resolve())).as_posix()
    return render_rows(table, read_rows(path), link)


_OPEN = re.compile(r"^<!-- bench:(\S+) -->[ \t]*$", re.M)
_BLOCK = re.compile(r"^<!-- bench:([\w.-]+) -->[ \t]*\n(.*?)^<!-- /bench:\1 -->[ \t]*$", re.S | re.M)


def regenerate(text: str, tables: Mapping[str, Table], results_dir: str | Path = RESULTS_DIR,
               markdown_dir: str | Path = ".") -> tuple[str, list[str]]:
    """``text`` with every marked table regenerated, and the names of those that changed."""
    opened = _OPEN.findall(text)
    closed = [m.group(1) for m in _BLOCK.finditer(text)]
    unclosed = [n for n in opened if opened.count(n) > closed.count(n)]
    if unclosed:
        raise DataError(f"table marker(s) {sorted(set(unclosed))} opened with <!-- bench:NAME --> but never closed "
                        f"with <!-- /bench:NAME -->")
    unknown = [n for n in closed if n not in tables]
    if unknown:
        raise unknown_name("benchmark table", unknown[0], list(tables))
    changed: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        new = render_table(tables[name], results_dir, markdown_dir)
        block = f"<!-- bench:{name} -->\n{new}\n<!-- /bench:{name} -->"
        if block != m.group(0):
            changed.append(name)
        return block

    return _BLOCK.sub(sub, text), changed


def update_markdown(path: str | Path, tables: Mapping[str, Table], results_dir: str | Path = RESULTS_DIR, *,
                    check: bool = False) -> list[str]:
    """Regenerate the marked tables of the markdown file ``path``; returns the names of the stale ones.

    With ``check`` the file is left as it is (a caller fails when the list is not empty).
    """
    from fusionrec.atomic import atomic_write_text

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; give the markdown file holding the tables (--markdown)")
    text = path.read_text(encoding="utf-8")
    new, changed = regenerate(text, tables, results_dir, path.parent)
    if changed and not check:
        atomic_write_text(path, new)
    return changed
