"""The ``baselines`` and ``ablation`` suites: a model on a dataset's leave-one-out split, one process each.

Protocol (PEERS.md's "train+valid"): evalkit's leave-one-out split (per user, last event -> test,
second-to-last -> valid; a random one of each, seeded, where there are no timestamps), settings not
fixed by ``--set`` tuned on valid (NDCG@10), full ranking of the test users with their valid event as
history at inference. Each (model, seed) runs in a fresh process, so ``peak_rss_mb`` is that
model's own, tuning included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fusionrec.bench.provenance import source_dir

DEFAULT_MODELS = ("pop", "itemknn", "puresvd", "ease", "als", "bpr")


def model_sets(model: str, sets: list[str]) -> list[str]:
    """The ``--set`` overrides that apply to ``model``: unprefixed ones and ``model.key=value``."""
    return [s for s in sets if "." not in s.split("=")[0] or s.startswith(f"{model}.")]


def baseline(dataset: str, model: str, data_dir: str | Path | None, sets: list[str], seed: int = 0) -> dict[str, Any]:
    """Tune ``model`` on the valid part, then score the test users (valid events as history).

    ``seed`` seeds the split (where it is random) and the model (unless ``--set seed=`` fixes it).
    Returns the metrics of one row (no provenance: :func:`fusionrec.bench.measurement.measure` adds it).
    """
    from fusionrec.data import load
    from fusionrec.data.splits import leave_last_out, random_leave_one_out
    from fusionrec.evaluation import evaluate
    from fusionrec.jobs import model_settings, tune
    from fusionrec.run import Stopwatch

    data = load(dataset, data_dir)
    split = leave_last_out(data) if data.has_timestamps else random_leave_one_out(data, seed=seed)
    if split.valid is None:
        raise ValueError(f"{dataset}: the leave-one-out split has no valid part to tune on")
    settings = {"seed": seed, **model_settings(model, None, model_sets(model, sets))}
    with Stopwatch() as tune_t:  # the CLI's default: settings not fixed are tuned on valid
        rec, trials = tune(model, settings, split.train, split.valid)
    chosen = {k: getattr(rec.config, k) for k in (trials[0]["settings"] if trials else {})}
    fit_seconds = next(tr["seconds"] for tr in trials if tr["settings"] == chosen)
    with Stopwatch() as te:
        res = evaluate(rec, split.test, (10, 20), extra_history=split.valid.csr("order"))
    m = res.metrics
    valid = evaluate(rec, split.valid, (10,)).metrics["NDCG@10"]
    return {"model": model, "settings": {**settings, **chosen}, "trials": len(trials),
            "protocol": split.name + "+valid-history", "HR@10": m["HR@10"], "NDCG@10": m["NDCG@10"],
            "MRR@10": m["MRR@10"], "HR@20": m["HR@20"], "NDCG@20": m["NDCG@20"],
            "train_seconds": round(fit_seconds, 3), "tune_seconds": round(tune_t.seconds, 2),
            "eval_seconds": round(te.seconds, 3), "users": int(m["users"]), "valid_NDCG@10": valid,
            **training_summary(rec), **scoring_latency(rec, split),
            # per test user, for paired comparisons (fusionrec.evaluation.significance) and for where a model
            # gains: the user's training events and the training count of their test item
            "per_user": per_user(res, split)}


def per_user(res: Any, split: Any) -> dict[str, list[Any]]:
    """Per test user (in ``res.users`` order): id, NDCG@10, training events, training count of the test item."""
    import numpy as np

    train = split.train.csr("binary")
    lengths = np.diff(train.indptr)
    counts = np.asarray(train.sum(axis=0)).ravel()
    test = split.test.interactions.drop_duplicates("user").set_index("user")["item"]
    users = np.asarray(res.users)
    return {"users": [int(u) for u in users], "NDCG@10": [round(float(x), 6) for x in res.per_user["NDCG@10"]],
            "history": [int(lengths[u]) if u < len(lengths) else 0 for u in users],
            "item_count": [int(counts[test[u]]) for u in users]}


def scoring_latency(model: Any, split: Any) -> dict[str, Any]:
    from fusionrec.bench.speed import scoring_latency as latency

    return latency(model, split)


def training_summary(model: Any) -> dict[str, Any]:
    """What a trained model's log says: epochs, the best valid epoch and its metric, median s/epoch, and
    the item-item prior's choices (fit on valid: the fused valid metric above leans optimistic)."""
    import statistics

    out: dict[str, Any] = {}
    log = getattr(model, "training_log_", None) or []
    if log:
        validated = [r for r in log if "valid" in r]
        best = max(validated, key=lambda r: next(iter(r["valid"].values()))) if validated else log[-1]
        out.update({"epochs": len(log), "best_epoch": best["epoch"],
                    "valid_network": next(iter(best.get("valid", {}).values()), None),
                    "seconds_per_epoch": round(statistics.median(r["seconds"] for r in log), 3)})
    prior = getattr(model, "prior_log_", None)
    if prior:
        out["prior"] = prior
    stages = getattr(model, "stages_", None)
    if stages:
        out["stages"] = stages
    return out


def child_env() -> dict[str, str]:
    """This process's environment, with the fusionrec sources it imported first on PYTHONPATH."""
    env = dict(os.environ)
    src = str(source_dir().parent)
    env["PYTHONPATH"] = os.pathsep.join([src, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    return env


def baseline_in_subprocess(dataset: str, model: str, data_dir: str | Path | None, sets: list[str], *,
                           seed: int = 0, command: str | None = None, suite: str = "baselines",
                           bench: str = "baselines") -> dict[str, Any]:
    """One row of :func:`baseline` measured in a fresh process (``fusionrec bench baseline-one``).

    The child measures and returns the whole row (provenance included, ``command`` the one given);
    the caller appends it.
    """
    cmd = [sys.executable, "-m", "fusionrec", "bench", "baseline-one", "--dataset", str(dataset), "--model", model,
           "--seed", str(seed), "--suite", suite, "--bench", bench]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    for s in sets:
        cmd += ["--set", s]
    if command is not None:
        cmd += ["--command", command]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=child_env())
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark of {model} (seed {seed}) failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


#: fusion switches an ablation turns off one at a time (see fusionrec.models.fusion)
ABLATION_SWITCHES = ("text", "image", "audio", "attributes", "kg", "profile", "id")


def ablation_variants(dataset: str, data_dir: str | Path | None,
                      switches: list[str] | None = None) -> dict[str, list[str]]:
    """Variant name -> ``--set`` overrides: the full model, each switch off (where the dataset has
    that source), and content only / ID only (plain SASRec through the same code)."""
    from fusionrec.data import load

    data = load(dataset, data_dir)
    kinds = set(data.item_schema.values())
    has = {"text": "text" in kinds, "image": "image" in kinds, "audio": "audio" in kinds,
           "attributes": bool(kinds & {"categorical", "multi", "numeric"}), "kg": data.kg is not None,
           "profile": data.users is not None and bool(data.user_schema), "id": True}
    wanted = [s for s in (switches or ABLATION_SWITCHES) if has.get(s)]
    variants: dict[str, list[str]] = {"full": []}
    for s in wanted:
        variants[f"without {s}"] = [f"fusion.{s}=false"]
    content = [s for s in ABLATION_SWITCHES if s != "id" and has.get(s)]
    variants["ID only"] = [f"fusion.{s}=false" for s in content]
    return variants


def ablation(dataset: str, data_dir: str | Path | None, sets: list[str], switches: list[str] | None = None, *,
             seed: int = 0, command: str | None = None,
             on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """One ``fusion`` row per variant of :func:`ablation_variants`, each in a fresh process.

    ``vs full`` is each variant's NDCG@10 relative to the full model's of the same seed.
    """
    rows: list[dict[str, Any]] = []
    for variant, extra in ablation_variants(dataset, data_dir, switches).items():
        row = baseline_in_subprocess(dataset, "fusion", data_dir, [*sets, *extra], seed=seed, command=command,
                                     suite="ablation", bench="ablation")
        row = {"variant": variant, **row}
        full = rows[0]["NDCG@10"] if rows else row["NDCG@10"]
        row["vs full"] = row["NDCG@10"] / full - 1 if full else None
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows
