"""Benchmarks behind ``fusionrec bench``: quality, speed and memory on real and synthetic data."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.run import Stopwatch, peak_rss_mb


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "processor": platform.processor() or platform.machine()}


def dataset_or_skip(name: str, data_dir: str | Path | None) -> Path:
    """The data dir when catalog dataset ``name`` lies in it; otherwise say why on stderr and exit 0
    (a benchmark skipped for want of data is not a failure)."""
    from fusionrec.data.catalog import CATALOG

    spec = CATALOG[name]
    root = Path(data_dir).expanduser() if data_dir else None
    if root is None or spec.find(root) is None:
        print(f"skipped: {name} not found under {root or '(no --data-dir, FUSIONREC_DATA unset)'}; give the "
              f"datasets folder with --data-dir DIR or FUSIONREC_DATA=DIR (it must hold {spec.folders[0]}/)",
              file=sys.stderr)
        raise SystemExit(0)
    return root


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")


def baseline(dataset: str, model: str, data_dir: Path | None, sets: list[str]) -> dict[str, Any]:
    """Train ``model`` on the leave-one-out train part; test users get their valid event as history.

    This is PEERS.md's "train+valid" protocol through ``recommend --history valid.tsv``.
    """
    from fusionrec.data import catalog
    from fusionrec.data.splits import leave_last_out, random_leave_one_out
    from fusionrec.evaluation import evaluate
    from fusionrec.jobs import model_settings, tune

    data = catalog.load(dataset, data_dir)
    split = leave_last_out(data) if data.has_timestamps else random_leave_one_out(data, seed=0)
    settings = model_settings(model, None, [s for s in sets if "." not in s.split("=")[0]
                                            or s.startswith(f"{model}.")])
    with Stopwatch() as tune_t:  # the CLI's default: settings not fixed are tuned on valid
        rec, trials = tune(model, settings, split.train, split.valid)
    fit_seconds = next(tr["seconds"] for tr in trials if tr["settings"] == {
        k: getattr(rec.config, k) for k in tr["settings"]})
    with Stopwatch() as te:
        res = evaluate(rec, split.test, (10, 20), extra_history=split.valid.csr("order") if split.valid else None)
    m = res.metrics
    chosen = {k: getattr(rec.config, k) for k in (trials[0]["settings"] if trials else {})}
    return {"dataset": dataset, "model": model, "settings": {**settings, **chosen}, "trials": len(trials),
            "tune_seconds": round(tune_t.seconds, 2), "protocol": split.name + "+valid-history",
            "HR@10": m["HR@10"], "NDCG@10": m["NDCG@10"], "MRR@10": m["MRR@10"], "HR@20": m["HR@20"],
            "NDCG@20": m["NDCG@20"], "train_seconds": round(fit_seconds, 3), "eval_seconds": round(te.seconds, 3),
            "peak_rss_mb": round(peak_rss_mb(), 1), "users": m["users"], "machine": machine(),
            "date": time.strftime("%Y-%m-%d")}


def baseline_in_subprocess(dataset: str, model: str, data_dir: Path | None, sets: list[str]) -> dict[str, Any]:
    """:func:`baseline` in a fresh process, so peak memory is the model's own."""
    cmd = [sys.executable, "-m", "fusionrec", "bench", "baseline-one", "--dataset", dataset, "--model", model]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark of {model} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GEMM throughput of this machine through torch (GFLOP/s)."""
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def ranking_scale(n_users: int, n_items: int, dim: int, k: int, history: int, seed: int = 0) -> dict[str, Any]:
    """Time a full-ranking evaluation of ``n_users x n_items`` with ``dim``-dim factors.

    Every user has ``history`` seen items (excluded) and one test item; the whole
    :func:`fusionrec.evaluation.evaluate` path runs (scores, exclusion, tie-break, top-K, metrics).
    """
    import pandas as pd

    from fusionrec.data.idmap import IdMap
    from fusionrec.data.schema import Dataset
    from fusionrec.evaluation import evaluate
    from fusionrec.models.factors import FactorModel

    rng = np.random.default_rng(seed)
    u = np.repeat(np.arange(n_users), history)
    i = rng.integers(0, n_items, size=n_users * history)
    train = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=(n_users, n_items))
    train.sum_duplicates()
    train.data[:] = 1
    test_items = rng.integers(0, n_items, size=n_users)
    ids_u, ids_i = IdMap(np.arange(n_users)), IdMap(np.arange(n_items))
    test = Dataset(pd.DataFrame({"user": np.arange(n_users), "item": test_items, "timestamp": 0}), ids_u, ids_i)
    model = FactorModel.from_factors(rng.standard_normal((n_users, dim), dtype=np.float32),
                                     rng.standard_normal((n_items, dim), dtype=np.float32), train)
    rss0 = peak_rss_mb()
    with Stopwatch() as t:
        res = evaluate(model, test, (k,))
    flops = 2.0 * n_users * n_items * dim
    peak = matmul_peak_gflops()
    achieved = flops / t.seconds / 1e9
    return {"users": n_users, "items": n_items, "dim": dim, "k": k, "history_per_user": history,
            "seconds": round(t.seconds, 2), "peak_rss_mb": round(peak_rss_mb(), 1),
            "rss_before_eval_mb": round(rss0, 1), "scoring_gflop": round(flops / 1e9, 1),
            "achieved_gflops": round(achieved, 1), "machine_matmul_peak_gflops": round(peak, 1),
            "fraction_of_peak": round(achieved / peak, 3), f"NDCG@{k}": res.metrics[f"NDCG@{k}"],
            "machine": machine(), "date": time.strftime("%Y-%m-%d")}


#: fusion switches an ablation turns off one at a time (see fusionrec.models.fusion)
ABLATION_SWITCHES = ("text", "image", "audio", "attributes", "kg", "profile", "id")


def ablation_variants(dataset: str, data_dir: Path | None, switches: list[str] | None = None) -> dict[str, list[str]]:
    """Variant name -> ``--set`` overrides: the full model, each switch off (where the dataset has
    that source), and content only / ID only (plain SASRec through the same code)."""
    from fusionrec.data import catalog

    data = catalog.load(dataset, data_dir)
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


def ablation(dataset: str, data_dir: Path | None, sets: list[str], switches: list[str] | None = None,
             on_row: Any = None) -> list[dict[str, Any]]:
    """One ``fusion`` run per variant of :func:`ablation_variants`, each in a fresh process."""
    rows = []
    for variant, extra in ablation_variants(dataset, data_dir, switches).items():
        row = {"variant": variant, **baseline_in_subprocess(dataset, "fusion", data_dir, [*sets, *extra])}
        rows.append(row)
        if on_row is not None:
            on_row(row)
    full = rows[0]["NDCG@10"]
    for r in rows:
        r["vs full"] = r["NDCG@10"] / full - 1 if full else float("nan")
    return rows
