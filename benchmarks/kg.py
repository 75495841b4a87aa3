"""Knowledge-graph benchmark (P4): KG link prediction and the ``kg`` recommender on kg-lastfm.

``linkpred``: TransE (with RotatE's self-adversarial loss, and ``transe-margin`` with Bordes et
al.'s margin loss) and RotatE, 64 dimensions, 50 epochs, on the kg-lastfm triples (items mapped to their entities), split
80/10/10 with seed 0 (held-out triples whose entities would be unseen in train stay in train);
filtered MRR and Hits@1/3/10 on the test part (head and tail queries), plus the valid MRR.

``rec``: ``kg`` vs ``bpr`` vs ``pop`` (and ``kg`` without its KG, the ablation) on kg-lastfm,
random leave-one-out by user with seed 0 (``fusionrec.data.splits.random_leave_one_out``), full
ranking, the ``fusionrec bench baselines`` protocol: settings tuned on the valid part (each
model's ``search_space``, NDCG@10; ``kg`` also early-stops on valid), test users get their valid
event as history at inference. Also times KG-path explanations for the top 20 of every test user.

Each run appends JSON lines to ``bench-out/kg.jsonl`` and prints a markdown table::

    python benchmarks/kg.py linkpred --data-dir ../shared/datasets
    python benchmarks/kg.py rec --data-dir ../shared/datasets
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path("bench-out/kg.jsonl")


def linkpred(data_dir: Path, models: list[str], epochs: int, dim: int) -> list[dict[str, Any]]:
    from fusionrec.bench import machine
    from fusionrec.data import catalog
    from fusionrec.graph.kge import KGEConfig, KGEmbedding, link_prediction
    from fusionrec.graph.triples import split_triples, triples_from_dataset

    data = catalog.load("kg-lastfm", data_dir)
    triples = triples_from_dataset(data)
    train, valid, test = split_triples(triples, 0.1, 0.1, seed=0)
    rows = []
    for name in models:
        model, _, loss = name.partition("-")
        cfg = KGEConfig(model=model, dim=dim, epochs=epochs, **({"loss": loss} if loss else {}))
        t0 = time.perf_counter()
        kge = KGEmbedding(cfg).fit(train)
        seconds = time.perf_counter() - t0
        v = link_prediction(kge, valid, triples)
        res = link_prediction(kge, test, triples)
        row = {"bench": "kg-linkpred", "dataset": "kg-lastfm", "model": name,
               "split": f"80/10/10 seed 0: {len(train)}/{len(valid)}/{len(test)} triples", "filtered": True,
               **{k: round(res[k], 4) for k in ("MRR", "Hits@1", "Hits@3", "Hits@10")},
               "valid_MRR": round(v["MRR"], 4), "train_seconds": round(seconds, 1),
               "settings": {k: getattr(cfg, k) for k in ("dim", "epochs", "margin", "negatives", "lr", "loss",
                                                         "adversarial_temperature", "batch_size")},
               "machine": machine(), "date": time.strftime("%Y-%m-%d")}
        rows.append(row)
        print(f"# {name}: test MRR {row['MRR']} Hits@10 {row['Hits@10']} ({seconds:.0f} s)", file=sys.stderr)
    return rows


def rec(data_dir: Path, models: list[str]) -> list[dict[str, Any]]:
    import numpy as np

    from fusionrec.bench import machine
    from fusionrec.data import catalog
    from fusionrec.data.splits import random_leave_one_out
    from fusionrec.evaluation import evaluate
    from fusionrec.jobs import tune
    from fusionrec.run import Stopwatch

    data = catalog.load("kg-lastfm", data_dir)
    split = random_leave_one_out(data, seed=0)
    assert split.valid is not None
    rows = []
    for variant in models:
        name, fixed = ("kg", {"use_kg": False}) if variant == "kg-nokg" else (variant, {})
        with Stopwatch() as tt:
            model, trials = tune(name, fixed, split.train, split.valid)
        chosen = {k: getattr(model.config, k) for k in (trials[0]["settings"] if trials else {})}
        fit_s = next(tr["seconds"] for tr in trials if tr["settings"] == chosen)
        res = evaluate(model, split.test, (10, 20), extra_history=split.valid.csr("order")).metrics
        row = {"bench": "kg-rec", "dataset": "kg-lastfm", "model": variant, "settings": {**fixed, **chosen},
               "protocol": "random-loo seed 0 + valid-history, full ranking", "trials": len(trials),
               "NDCG@10": round(res["NDCG@10"], 4), "HR@10": round(res["HR@10"], 4),
               "NDCG@20": round(res["NDCG@20"], 4), "HR@20": round(res["HR@20"], 4),
               "valid_NDCG@10": round(max(tr["NDCG@10"] for tr in trials), 4) if len(trials) > 1 else None,
               "train_seconds": round(fit_s, 1), "tune_seconds": round(tt.seconds, 1), "users": res["users"],
               "machine": machine(), "date": time.strftime("%Y-%m-%d")}
        if variant == "kg":
            row["best_epoch"] = getattr(model, "best_epoch_", None)
            users = np.unique(split.test.interactions["user"].to_numpy())
            recs, _ = model.recommend(users, 20, extra_history=split.valid.csr("order"))
            t0 = time.perf_counter()
            explained = n_paths = 0
            for u, items in zip(users, recs, strict=True):
                for ps in model.explain_paths(int(u), items.tolist(), top=3):
                    explained += bool(ps)
                    n_paths += len(ps)
            row["explain_seconds"] = round(time.perf_counter() - t0, 2)
            row["explain"] = f"{len(users)} users x 20 items: {explained / recs.size:.1%} with a KG path"
        rows.append(row)
        print(f"# {variant}: NDCG@10 {row['NDCG@10']} ({row['settings']})", file=sys.stderr)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    if rows[0]["bench"] == "kg-linkpred":
        out = ["| model | MRR | Hits@1 | Hits@3 | Hits@10 | valid MRR | train s | settings |", "|---" * 8 + "|"]
        for r in rows:
            s = r["settings"]
            out.append(f"| {r['model']} | {r['MRR']:.4f} | {r['Hits@1']:.4f} | {r['Hits@3']:.4f} | "
                       f"{r['Hits@10']:.4f} | {r['valid_MRR']:.4f} | {r['train_seconds']} | dim={s['dim']}, "
                       f"epochs={s['epochs']}, gamma={s['margin']}, loss={s['loss']} |")
        return "\n".join(out)
    out = ["| model | NDCG@10 | HR@10 | NDCG@20 | train s | tune s | chosen settings |", "|---" * 7 + "|"]
    for r in rows:
        sets = ", ".join(f"{k}={v}" for k, v in r["settings"].items()) or "-"
        out.append(f"| {r['model']} | {r['NDCG@10']:.4f} | {r['HR@10']:.4f} | {r['NDCG@20']:.4f} | "
                   f"{r['train_seconds']} | {r['tune_seconds']} | {sets} |")
    extra = [f"{r['model']}: best epoch {r.get('best_epoch')}, explanations {r['explain']} in "
             f"{r['explain_seconds']} s" for r in rows if "explain" in r]
    return "\n".join(out + [""] + extra)


def main(argv: list[str] | None = None) -> None:
    import json

    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["linkpred", "rec"])
    p.add_argument("--data-dir", default=os.environ.get("FUSIONREC_DATA", ""),
                   help="folder holding kg-lastfm-kgcn/ (default: $FUSIONREC_DATA)")
    p.add_argument("--models", default=None, help="linkpred: transe,transe-margin,rotate; rec: pop,bpr,kg,kg-nokg")
    p.add_argument("--epochs", type=int, default=50, help="linkpred epochs")
    p.add_argument("--dim", type=int, default=64, help="linkpred entity dimension")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(OUT))
    a = p.parse_args(argv)
    from fusionrec.bench import dataset_or_skip

    data_dir = dataset_or_skip("kg-lastfm", a.data_dir)
    torch.set_num_threads(a.threads)
    if a.command == "linkpred":
        rows = linkpred(data_dir, (a.models or "transe,transe-margin,rotate").split(","), a.epochs, a.dim)
    else:
        rows = rec(data_dir, (a.models or "pop,bpr,kg,kg-nokg").split(","))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
