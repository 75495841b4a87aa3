"""The item-item prior's settings on one trained network: source x weighting x l2 x topk, gate refit each time.

The prior is fit after training (``SequenceRecommender._fit_prior``: EASE weights of the training events,
a gate fit on the valid events), so one trained network serves every setting: train once (or load a saved
model with ``--run``), then for each (topk, l2) rebuild the prior, refit its gate on valid and score the
test users with their valid event as history (PEERS.md's "train+valid" protocol). The first row is the
network alone. ml-100k uses the leave-last-out split, data without timestamps (lastfm-2k) the random
leave-one-out split, seed 0.

Examples::

    python benchmarks/prior.py --dataset ml-100k --model sasrec --data-dir ../shared/datasets --set threads=1
    python benchmarks/prior.py --dataset ml-100k --model fusion --data-dir ../shared/datasets \\
        --set threads=1 --set id_dropout=0 --set modality_dropout=0
    python benchmarks/prior.py --dataset lastfm-2k --run bench-out/lastfm-full-model --topk 32 --l2 100,200 \\
        --weighting binary,log1p,log1p-idf
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", default="fusion", help="a sequence model: sasrec, fusion, gru4rec, caser")
    p.add_argument("--run", default="", help="a saved model directory to load instead of training")
    p.add_argument("--save", default="", help="save the trained model here (to rerun the grid with --run)")
    p.add_argument("--data-dir", default=os.environ.get("FUSIONREC_DATA", ""))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model setting (repeatable)")
    p.add_argument("--topk", default="8,16,32,64,128", help="comma list of prior_topk values")
    p.add_argument("--l2", default="100", help="comma list of prior_l2 values")
    p.add_argument("--weighting", default="auto", help="comma list of prior_weighting values: auto, binary, log1p, "
                   "log1p-idf")
    p.add_argument("--source", default="auto", help="comma list of prior_source values: auto, ease, knn")
    p.add_argument("--coverage", action="store_true", help="also the share of top-10 items `fusionrec explain` "
                   "backs with a KG path or friends (benchmarks/fusion.py's figure)")
    p.add_argument("--out", default="bench-out/prior.jsonl")
    a = p.parse_args(argv)
    if not a.data_dir:
        raise SystemExit("give the datasets folder: --data-dir DIR or FUSIONREC_DATA=DIR")

    import numpy as np
    import torch

    from fusionrec.bench import machine
    from fusionrec.data import load
    from fusionrec.data.splits import leave_last_out, random_leave_one_out
    from fusionrec.evaluation.evaluate import evaluate
    from fusionrec.jobs import build_model, model_settings
    from fusionrec.models.base import Recommender

    torch.set_num_threads(1)
    data = load(a.dataset, data_dir=a.data_dir)
    split = leave_last_out(data) if data.has_timestamps else random_leave_one_out(data, seed=0)
    t0 = time.perf_counter()
    if a.run:
        model = Recommender.load(a.run)
    else:
        model = build_model(a.model, model_settings(a.model, None, [*a.set, "prior=false"]))
        model.fit(split.train, split.valid)
        if a.save:
            model.save(a.save)
    train_seconds = time.perf_counter() - t0
    extra = split.valid.csr("order")

    def measure(**prior: object) -> dict[str, object]:
        t = time.perf_counter()
        model.prior_ = None
        if prior:
            model.config = dataclasses.replace(model.config, prior=True, **prior)
            model._fit_prior(split.train, split.valid)
        fit = time.perf_counter() - t
        valid = evaluate(model, split.valid, (10,)).metrics["NDCG@10"]
        test = evaluate(model, split.test, (10, 20), extra_history=extra).metrics
        explained = {}
        if a.coverage and hasattr(model, "explain_paths"):
            from fusionrec.graph.explain import evidence_coverage

            users = np.unique(split.test.interactions["user"].to_numpy())
            explained = {k: (round(v, 4) if isinstance(v, float) else v)
                         for k, v in evidence_coverage(model, users, 10, extra_history=extra).items()}
        row = {"dataset": a.dataset, "model": model.name, "run": a.run or None, "settings": a.set,
               "prior": prior or None, "valid_NDCG@10": round(valid, 4),
               **{k: round(test[k], 4) for k in ("NDCG@10", "HR@10", "NDCG@20")},
               "gate": model.prior_.gate.round(4).tolist() if model.prior_ is not None else None,
               "gate_log": model.prior_log_ if prior else None, "explained": explained or None, "prior_seconds": round(fit, 1),
               "train_seconds": round(train_seconds, 1), "machine": machine(), "date": time.strftime("%Y-%m-%d")}
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        with open(a.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps({k: row[k] for k in ("prior", "valid_NDCG@10", "NDCG@10", "HR@10", "gate", "prior_seconds")}),
              flush=True)
        return row

    measure()
    for source in a.source.split(","):
        for weighting in a.weighting.split(","):
            for l2 in (float(x) for x in a.l2.split(",")):
                for topk in (int(x) for x in a.topk.split(",")):
                    measure(prior_source=source, prior_l2=l2, prior_topk=topk, prior_weighting=weighting)
    print(f"rows appended to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
