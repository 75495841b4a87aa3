"""``fusionrec explain``: why a run recommends what it recommends to one user."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from fusionrec.cli.common import friendly_errors, out, print_json
from fusionrec.errors import ConfigError


def explain_user(run: Any, user: str, *, item: str | None = None, k: int = 10, history: Any = None) -> dict[str, Any]:
    """Explanations with raw ids: ``{"user", "items": [{"item", "rank", "score", "gates", "attended", ...}]}``.

    Without ``item``, the user's top-``k`` recommendations are explained. Models with graph data
    (``explain_paths`` / ``explain_friends``) add to every row ``"paths"`` (KG paths from the
    user's history, best first: ``{"history_item", "path", "nodes", "relations", "score"}``) and
    ``"friends"`` (``{"count", "top_friends", "contribution", "message"}``, or None without social
    evidence); every item and user in them is a raw id.
    """
    from fusionrec.graph.explain import graph_evidence

    model = run.model
    if not hasattr(model, "explain"):
        raise ConfigError(f"model {model.name!r} has no explanations; train a 'fusion' model (or a graph model) to get them")
    extra = run.history_matrix(history)
    run.extend_users([user])
    u = int(run.user_ids.index([user], what="user", source="--user")[0])
    hist = model.history_for(np.array([u]), extra)
    if item is not None:
        items = run.item_ids.index([item], what="item", source="--item")
        scores = model.score(np.array([u]), hist)[0, items]
        ranks: list[int | None] = [None]
    else:
        top, vals = model.recommend(np.array([u]), k, extra_history=extra)
        items, scores = top[0][top[0] >= 0], vals[0][top[0] >= 0]
        ranks = list(range(1, len(items) + 1))
    rows = model.explain(u, items, history=hist)
    graph = hasattr(model, "explain_paths") or hasattr(model, "explain_friends")
    evidence = graph_evidence(model, u, items, hist) if graph else [None] * len(rows)
    raw = lambda i: None if i is None else str(run.item_ids.raw(np.array([i]))[0])  # noqa: E731
    raw_users = lambda us: [str(x) for x in run.user_ids.raw(np.asarray(us, dtype=np.int64))]  # noqa: E731
    for r, rank, s, ev in zip(rows, ranks, scores, evidence, strict=True):
        r["item"], r["rank"], r["score"] = raw(r["item"]), rank, float(s)
        r.setdefault("gates", {})
        r["attended"] = [{**a, "item": raw(a["item"])} for a in r.get("attended", [])]
        if isinstance(r.get("prior"), dict):
            r["prior"]["because"] = [{**b, "item": raw(b["item"])} for b in r["prior"]["because"]]
        if ev is None:
            continue
        r["paths"] = [{**p, "history_item": raw(p["history_item"])} for p in ev["paths"]]
        fr = ev["friends"]
        if fr is not None:
            fr = {**fr, "top_friends": raw_users(fr["top_friends"]),
                  "message": f"{fr['count']} of your friends {'listens' if fr['count'] == 1 else 'listen'} to {r['item']}"}
        r["friends"] = fr
        if "top_friends" in r:  # the social model's own row keys: raw ids there too
            r["top_friends"] = fr["top_friends"] if fr is not None else []
            r["message"] = fr["message"] if fr is not None else ""
    return {"user": user, "model": model.name, "items": rows}


def _why(r: dict[str, Any]) -> str:
    """The best KG path, the social message, the side-event boost and the item-item prior's evidence
    of a row ("" without any)."""
    parts = [r["paths"][0]["path"]] if r.get("paths") else []
    if isinstance(r.get("friends"), dict):
        parts.append(r["friends"]["message"])
    if isinstance(r.get("side_event"), dict):  # e.g. lastfm-2k: the user tagged this artist
        parts.append(f"you have a side event (e.g. a tag) on it: score +{r['side_event']['boost']:.2f}")
    if isinstance(r.get("prior"), dict) and r["prior"]["because"]:  # the item-item prior's evidence
        names = ", ".join(b["item"] for b in r["prior"]["because"])
        parts.append(f"often taken with {names}: score +{r['prior']['score']:.2f}")
    return "; ".join(parts)


def _table(result: dict[str, Any]) -> Table:
    rows = result["items"]
    sources = list(dict.fromkeys(s for r in rows for s in r.get("gates", {})))
    t = Table(title=f"why {result['model']} recommends these to user {result['user']}")
    for col in ["rank", "item", "score", *[f"gate {s}" for s in sources], "attended history", "why"]:
        t.add_column(col, justify="left" if col in ("item", "attended history", "why") else "right")
    for r in rows:
        att = ", ".join(f"{a['item'] or a['source']} ({a['attention']:.2f})" for a in r.get("attended", []))
        # escaped: paths hold "[relation]", which rich would read as markup
        t.add_row(str(r["rank"] or "-"), escape(r["item"]), f"{r['score']:.3f}",
                  *[f"{r['gates'].get(s, 0.0):.2f}" for s in sources], escape(att), escape(_why(r)))
    return t


@friendly_errors
def explain(
    run_dir: Annotated[Path, typer.Option("--run", help="Run directory from 'fusionrec train'.")],
    user: Annotated[str | None, typer.Option("--user", help="Raw user id (default: the run's first user with a history).")] = None,
    item: Annotated[str | None, typer.Option("--item", help="Explain this item instead of the top-K list.")] = None,
    k: Annotated[int, typer.Option("--k", help="How many recommendations to explain.")] = 10,
    history: Annotated[Path | None, typer.Option("--history", help="Extra events (user,item,timestamp) used at inference.")] = None,
) -> None:
    """Per recommended item: the weight of each modality/source, the history items attended to most, and
    (graph models) KG paths from the user's history and friends who have the item."""
    from fusionrec.cli.runs import _load_events
    from fusionrec.run import Run

    if k <= 0:
        raise ConfigError(f"--k must be a positive integer, got {k}")
    run = Run.load(run_dir)
    if user is None:
        lengths = np.diff(run.model.train_matrix_.indptr)
        if not (lengths > 0).any():
            raise ConfigError(f"{run_dir}: no user has a training history; give --user")
        user = str(run.user_ids.raw(np.array([int(np.argmax(lengths > 0))]))[0])
        from fusionrec.cli.common import console

        console.print(f"explaining user {user} (the run's first user with a history; choose one with --user)",
                      highlight=False)
    result = explain_user(run, user, item=item, k=k, history=_load_events(history))
    out.print(_table(result))
    print_json(result)
