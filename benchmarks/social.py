"""Social-model benchmark (P4) on lastfm-2k: warm users, and new users known only by their friends.

``rec``: social vs ease, als, bpr and pop on the random leave-one-out split (seed 0), full ranking,
the ``fusionrec bench baselines`` protocol: settings tuned on the valid part (NDCG@10), then the test
users are ranked with their valid event as extra history. EASE's l2 is tuned through the social
model with its social terms off and binary weights, which computes exactly EASE's scores by the
dual (Woodbury) form in seconds; EASE itself is then fitted once with the chosen l2 (its n_items^2
inverse takes minutes on one core), and its test row comes from that fit.

``new-users``: 10% of the users who have friends (seed 0) lose their whole history; everything else
trains; each hidden user is ranked from the social graph alone. Recall@20 / NDCG@20 of their hidden
items, against popularity and a 'friends' baseline (rank items by how many friends listen to them).
The social model's settings are chosen on another 10% of users with friends, hidden the same way
from a training set that also lacks the test users; the test run then trains on all non-test users.

Examples::

    python benchmarks/social.py rec --data-dir ../shared/datasets
    python benchmarks/social.py rec --data-dir ../shared/datasets --models ease
    python benchmarks/social.py new-users --data-dir ../shared/datasets
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

DATASET = "lastfm-2k"
REC_MODELS = ("social", "ease", "als", "bpr", "pop")


def _load(data_dir: Path):  # type: ignore[no-untyped-def]
    from fusionrec.data import catalog

    return catalog.load(DATASET, data_dir)


def rec_one(name: str, split: Any) -> dict[str, Any]:
    """Tune ``name`` on ``split.valid``, fit, and score the test users (valid events as history)."""
    from fusionrec.evaluation import evaluate
    from fusionrec.jobs import build_model, tune
    from fusionrec.models.ease import EASE
    from fusionrec.run import Stopwatch

    extra = split.valid.csr("order")
    with Stopwatch() as tt:
        if name == "ease":  # exact EASE scores by the dual form; see the module docstring
            best: tuple[float, float] | None = None
            for l2 in EASE.search_space["l2"]:
                m = build_model("social", {"l2": l2, "social_weight": 0.0, "friend_item_weight": 0.0,
                                           "weighting": "binary"}).fit(split.train)
                v = evaluate(m, split.valid, (10,)).metrics["NDCG@10"]
                if best is None or v > best[0]:
                    best = (v, l2)
            assert best is not None
            settings: dict[str, Any] = {"l2": best[1]}
            trials = len(EASE.search_space["l2"])
        else:
            model, tr = tune(name, {}, split.train, split.valid)
            settings = {k: getattr(model.config, k) for k in getattr(model, "search_space", {})}
            trials = len(tr)
    with Stopwatch() as ft:  # the chosen settings, fitted once more: the train time reported
        model = build_model(name, settings).fit(split.train, split.valid)
    valid = evaluate(model, split.valid, (10,)).metrics["NDCG@10"]
    m = evaluate(model, split.test, (10, 20), extra_history=extra).metrics
    return {"bench": "rec", "dataset": DATASET, "protocol": "random-loo seed 0 +valid-history, full ranking",
            "model": name, "settings": settings, "trials": trials, "valid_NDCG@10": round(valid, 4),
            "NDCG@10": m["NDCG@10"], "HR@10": m["HR@10"], "NDCG@20": m["NDCG@20"], "HR@20": m["HR@20"],
            "train_s": round(ft.seconds, 2), "tune_s": round(tt.seconds, 1), "users": m["users"]}


def hide_users(data: Any, users: np.ndarray) -> tuple[Any, Any]:
    """(rest, hidden): ``data`` without / with only the interactions of ``users``."""
    inter = data.interactions
    mask = np.isin(inter["user"].to_numpy(), users)
    return data.with_interactions(inter[~mask], name=f"{data.name}:rest"), \
        data.with_interactions(inter[mask], name=f"{data.name}:hidden")


def new_user_split(data: Any, seed: int = 0, frac: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(test users, valid users): disjoint ``frac`` shares of the users with friends and history."""
    from fusionrec.graph.social import friend_matrix

    f = friend_matrix(data)
    active = np.unique(data.interactions["user"].to_numpy())
    eligible = active[np.diff(f.indptr)[active] > 0]
    perm = np.random.default_rng(seed).permutation(eligible)
    n = int(round(frac * len(eligible)))
    return np.sort(perm[:n]), np.sort(perm[n:2 * n])


#: what ``rec`` tunes for warm users on lastfm-2k (social terms off): friends-only users are then
#: scored as ``f_u B`` (see fusionrec.models.social)
REC_SETTINGS: dict[str, Any] = {"l2": 150.0, "social_weight": 0.0, "friend_item_weight": 0.0}
#: (name, settings) of the models compared on hidden users; 'friends' counts friends per item
NEW_USER_BASELINES: dict[str, dict[str, Any]] = {
    "friends": {"l2": 200.0, "social_weight": 0.0, "friend_item_weight": 1.0, "weighting": "binary"},
}
NEW_USER_GRID = [{"l2": l2, "weighting": w, "social_weight": 1.0, "friend_item_weight": g, "friend_attention": 0.0}
                 for l2 in (50.0, 200.0, 1000.0) for w in ("binary", "log1p", "log1p-idf") for g in (0.0, 0.02, 0.1, 0.5, 2.0)]


def new_users(data: Any, ks: tuple[int, ...] = (10, 20)) -> list[dict[str, Any]]:
    from fusionrec.evaluation import evaluate
    from fusionrec.jobs import build_model
    from fusionrec.run import Stopwatch

    test_users, valid_users = new_user_split(data)
    rest, test = hide_users(data, test_users)
    inner, valid = hide_users(rest, valid_users)
    best: tuple[float, dict[str, Any]] | None = None
    with Stopwatch() as tt:
        for s in NEW_USER_GRID:
            m = build_model("social", s).fit(inner)
            v = evaluate(m, valid, ks).metrics["NDCG@20"]
            if best is None or v > best[0]:
                best = (v, s)
    assert best is not None
    rows = []
    for name, settings in [("social", best[1]), ("social (rec settings)", REC_SETTINGS), *NEW_USER_BASELINES.items(),
                           ("pop", {})]:
        model_name = "pop" if name == "pop" else "social"  # 'friends' is the social model, counts only
        with Stopwatch() as ft:
            m = build_model(model_name, settings).fit(rest)
        v = evaluate(build_model(model_name, settings).fit(inner), valid, ks).metrics
        r = evaluate(m, test, ks).metrics
        rows.append({"bench": "new-users", "dataset": DATASET, "model": name, "settings": settings,
                     "protocol": "10% of users with friends hidden (seed 0), ranked from friends only",
                     "Recall@20": r["Recall@20"], "NDCG@20": r["NDCG@20"], "Recall@10": r["Recall@10"],
                     "NDCG@10": r["NDCG@10"], "valid_NDCG@20": round(v["NDCG@20"], 4),
                     "train_s": round(ft.seconds, 2), "tune_s": round(tt.seconds, 1) if name == "social" else 0.0,
                     "test_users": int(r["users"]), "valid_users": len(valid_users)})
    return rows


def table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) and abs(v) < 1 else str(v)

    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["rec", "new-users"])
    p.add_argument("--data-dir", default=os.environ.get("FUSIONREC_DATA", ""))
    p.add_argument("--models", default=",".join(REC_MODELS), help="rec: comma-separated models")
    p.add_argument("--out", default="bench-out/social.jsonl")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    from fusionrec.bench import dataset_or_skip

    dataset_or_skip(DATASET, a.data_dir)
    torch.set_num_threads(a.threads)
    from fusionrec.bench import append_jsonl, machine
    from fusionrec.data.splits import random_leave_one_out

    data = _load(Path(a.data_dir))
    stamp = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    rows = []
    if a.command == "rec":
        split = random_leave_one_out(data, seed=0)
        for name in [m.strip() for m in a.models.split(",") if m.strip()]:
            row = rec_one(name, split)
            append_jsonl(Path(a.out), {**row, **stamp})
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        print(table(rows, ["model", "NDCG@10", "HR@10", "NDCG@20", "HR@20", "valid_NDCG@10", "train_s", "tune_s",
                           "settings"]))
    else:
        rows = new_users(data)
        for row in rows:
            append_jsonl(Path(a.out), {**row, **stamp})
        print(table(rows, ["model", "Recall@20", "NDCG@20", "Recall@10", "NDCG@10", "valid_NDCG@20", "test_users",
                           "settings"]))


if __name__ == "__main__":
    main()

