"""Sequence-model benchmark (P2): SASRec, GRU4Rec, Caser and NCF on the leave-one-out splits.

PEERS.md's protocol ("train+valid"): fit on the loo train part with the valid part for early
stopping, then rank for the test users with their valid event as added history (exactly
``fusionrec recommend --history valid.tsv``). Each (dataset, model) runs in a fresh process so that
peak memory is the model's own. Each row records NDCG@10, HR@10, the epochs run, seconds per epoch
(training only, without validation), total training seconds (with validation), peak RSS, the FLOPs
of one training epoch (forward + backward, counted by ``torch.utils.flop_counter`` on a real epoch's
batches) and the fraction of this machine's fp32 matmul peak that the epoch reached.

``speed`` times SASRec at RecBole's size (hidden 64, 2 layers, 2 heads, feed-forward 256, max length
50, full softmax) on ml-100k, against PEERS.md's RecBole epoch (128 s).

Examples::

    python benchmarks/sequence_models.py --data-dir ../shared/datasets            # everything
    python benchmarks/sequence_models.py --models sasrec --datasets ml-100k --set sasrec.epochs=50
    python benchmarks/sequence_models.py speed --epochs 5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MODELS = ("sasrec", "gru4rec", "caser", "ncf")
DATASETS = ("ml-100k", "ml-latest-small")
#: RecBole 1.2.1's SASRec defaults, as run for PEERS.md (its epoch: 128 s on this kind of machine)
RECBOLE_SASREC = {"hidden": 64, "layers": 2, "heads": 2, "inner": 256, "max_len": 50, "loss": "ce"}
RECBOLE_EPOCH_SECONDS = 128.0


def data_dir_from(arg: str | None) -> Path:
    path = arg or os.environ.get("FUSIONREC_DATA", "").strip()
    if not path:
        raise SystemExit("give the datasets folder: --data-dir DIR or FUSIONREC_DATA=DIR")
    return Path(path).expanduser()


def settings_for(model: str, sets: list[str]) -> dict[str, Any]:
    """``--set`` values that apply to ``model`` (``key=v`` for every model, ``model.key=v`` for one)."""
    from fusionrec.jobs import model_settings

    mine = [s for s in sets if "." not in s.split("=")[0] or s.startswith(f"{model}.")]
    return model_settings(model, None, mine)


def _register_cpu_attention_flops() -> None:
    """torch's flop counter knows the CUDA attention kernels but not the CPU one; count it the same way."""
    import torch
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten
    if aten._scaled_dot_product_flash_attention_for_cpu in fc.flop_registry:
        return

    @fc.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu)
    def _fwd(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any) -> int:
        return fc.sdpa_flop_count(query_shape, key_shape, value_shape)

    @fc.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu_backward)
    def _bwd(grad_out_shape: Any, query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any) -> int:
        return fc.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def epoch_flops(model: Any, train: Any) -> float:
    """FLOPs of one training epoch (forward + backward of every batch) of a fitted torch model."""
    import numpy as np
    from torch.utils.flop_counter import FlopCounterMode

    _register_cpu_attention_flops()
    net = model.network_
    net.train()
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            for batch in model.training_batches(train, np.random.default_rng(0)):
                model.training_step(batch).backward()
    finally:
        net.zero_grad(set_to_none=True)
        net.eval()
    return float(counter.get_total_flops())


def run_one(dataset: str, model_name: str, data_dir: Path, sets: list[str], threads: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    from fusionrec.bench import machine, matmul_peak_gflops
    from fusionrec.data import load
    from fusionrec.data.splits import leave_last_out
    from fusionrec.evaluation.evaluate import evaluate
    from fusionrec.jobs import build_model
    from fusionrec.run import peak_rss_mb

    split = leave_last_out(load(dataset, data_dir=data_dir))
    settings = settings_for(model_name, sets)
    model = build_model(model_name, settings)
    t0 = time.perf_counter()
    model.fit(split.train, split.valid)
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = evaluate(model, split.test, (10, 20), extra_history=split.valid.csr("order"))
    eval_seconds = time.perf_counter() - t0
    rss = peak_rss_mb()
    log = model.training_log_
    per_epoch = statistics.median(r["seconds"] for r in log)
    flops = epoch_flops(model, split.train)
    peak = matmul_peak_gflops()
    validated = [r for r in log if "valid" in r]
    best = max(validated, key=lambda r: r["valid"]["NDCG@10"]) if validated else log[-1]
    m = res.metrics
    prior = {}
    if getattr(model, "prior_", None) is not None:  # valid scored again with the prior the gate was fit on
        prior = {**model.prior_log_, "gate": model.prior_.gate.round(4).tolist(),
                 "valid_NDCG@10": evaluate(model, split.valid, (10,)).metrics["NDCG@10"]}
    return {"dataset": dataset, "model": model_name, "settings": settings,
            "config": dataclasses.asdict(model.config), "protocol": "loo+valid-history",
            "NDCG@10": m["NDCG@10"], "HR@10": m["HR@10"], "NDCG@20": m["NDCG@20"], "HR@20": m["HR@20"],
            "valid_NDCG@10": best.get("valid", {}).get("NDCG@10"), "best_epoch": best["epoch"],
            "prior": prior, "epochs": len(log), "seconds_per_epoch": round(per_epoch, 3), "train_seconds": round(train_seconds, 1),
            "eval_seconds": round(eval_seconds, 2), "peak_rss_mb": round(rss, 1),
            "gflop_per_epoch": round(flops / 1e9, 2), "achieved_gflops": round(flops / per_epoch / 1e9, 2),
            "matmul_peak_gflops": round(peak, 1), "fraction_of_peak": round(flops / per_epoch / 1e9 / peak, 3),
            "machine": machine(), "date": time.strftime("%Y-%m-%d")}


def run_speed(data_dir: Path, epochs: int, threads: int, sets: list[str]) -> dict[str, Any]:
    """SASRec at RecBole's size on ml-100k: seconds per training epoch (no validation)."""
    import torch

    torch.set_num_threads(threads)
    from fusionrec.bench import machine, matmul_peak_gflops
    from fusionrec.data import load
    from fusionrec.data.splits import leave_last_out
    from fusionrec.jobs import build_model
    from fusionrec.run import peak_rss_mb

    split = leave_last_out(load("ml-100k", data_dir=data_dir))
    settings = {**RECBOLE_SASREC, "epochs": epochs, **settings_for("sasrec", sets)}
    model = build_model("sasrec", settings).fit(split.train)
    seconds = [r["seconds"] for r in model.training_log_]
    per_epoch = statistics.median(seconds)
    flops = epoch_flops(model, split.train)
    peak = matmul_peak_gflops()
    return {"dataset": "ml-100k", "model": "sasrec", "check": "speed at RecBole's size", "settings": settings,
            "epoch_seconds": seconds, "seconds_per_epoch": round(per_epoch, 3),
            "recbole_seconds_per_epoch": RECBOLE_EPOCH_SECONDS,
            "ratio_to_recbole": round(per_epoch / RECBOLE_EPOCH_SECONDS, 4),
            "gflop_per_epoch": round(flops / 1e9, 2), "achieved_gflops": round(flops / per_epoch / 1e9, 2),
            "matmul_peak_gflops": round(peak, 1), "fraction_of_peak": round(flops / per_epoch / 1e9 / peak, 3),
            "peak_rss_mb": round(peak_rss_mb(), 1), "machine": machine(), "date": time.strftime("%Y-%m-%d")}


def table(path: Path) -> str:
    """A Markdown table of the rows in ``path`` (the latest row per dataset and model, then the speed rows)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    latest = {(r["dataset"], r["model"]): r for r in rows if "check" not in r}
    out = ["| dataset | model | NDCG@10 | HR@10 | epochs (best) | s/epoch | train s | peak RSS MB | GFLOP/epoch "
           "| GFLOP/s | of matmul peak |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (dataset, model), r in sorted(latest.items(), key=lambda kv: (DATASETS.index(kv[0][0]), -kv[1]["NDCG@10"])):
        out.append(f"| {dataset} | {model} | {r['NDCG@10']:.4f} | {r['HR@10']:.4f} | {r['epochs']} ({r['best_epoch']}) "
                   f"| {r['seconds_per_epoch']:.2f} | {r['train_seconds']:.0f} | {r['peak_rss_mb']:.0f} "
                   f"| {r['gflop_per_epoch']:.1f} | {r['achieved_gflops']:.1f} | {r['fraction_of_peak']:.2f} |")
    speed = [r for r in rows if r.get("check")]
    if speed:
        out += ["", "| SASRec at RecBole's size on ml-100k | s/epoch | RecBole s/epoch | ratio | GFLOP/epoch | GFLOP/s "
                "| of matmul peak |", "|---|---|---|---|---|---|---|"]
        for r in speed:
            extra = {k: v for k, v in r["settings"].items() if k not in RECBOLE_SASREC and k != "epochs"}
            out.append(f"| {extra or 'defaults'} | {r['seconds_per_epoch']:.2f} | {r['recbole_seconds_per_epoch']:.0f} "
                       f"| {r['ratio_to_recbole']:.3f} | {r['gflop_per_epoch']:.1f} | {r['achieved_gflops']:.1f} "
                       f"| {r['fraction_of_peak']:.2f} |")
    return "\n".join(out)


def append(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")


def in_subprocess(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", nargs="?", default="all", choices=["all", "one", "speed", "table"],
                   help="all: every (dataset, model) in its own process, then speed; one: a single run; "
                        "speed: SASRec at RecBole's size; table: print --out as a Markdown table")
    p.add_argument("--data-dir", help="datasets folder (default: $FUSIONREC_DATA)")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=[*MODELS, "fusion"])
    p.add_argument("--dataset", help="for 'one'")
    p.add_argument("--model", help="for 'one'")
    p.add_argument("--set", action="append", default=[], metavar="[MODEL.]KEY=VALUE",
                   help="a model setting (repeatable), e.g. sasrec.epochs=50")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--epochs", type=int, default=5, help="epochs timed by 'speed'")
    p.add_argument("--out", default="bench-out/sequence-models.jsonl", help="JSON-lines file rows are appended to")
    a = p.parse_args(argv)
    if a.command == "table":
        print(table(Path(a.out)))
        return
    data_dir = data_dir_from(a.data_dir)
    common = ["--data-dir", str(data_dir), "--threads", str(a.threads)] + [x for s in a.set for x in ("--set", s)]
    if a.command == "one":
        print(json.dumps(run_one(a.dataset, a.model, data_dir, a.set, a.threads)))
    elif a.command == "speed" and a.out == "-":
        print(json.dumps(run_speed(data_dir, a.epochs, a.threads, a.set)))
    elif a.command == "speed":
        row = in_subprocess(["speed", "--out", "-", "--epochs", str(a.epochs), *common])
        append(Path(a.out), row)
        print(json.dumps(row))
    else:
        for dataset in a.datasets:
            for model in a.models:
                row = in_subprocess(["one", "--dataset", dataset, "--model", model, *common])
                append(Path(a.out), row)
                print(json.dumps({k: row[k] for k in ("dataset", "model", "NDCG@10", "HR@10", "epochs",
                                                      "seconds_per_epoch", "train_seconds", "fraction_of_peak")}),
                      flush=True)
        row = in_subprocess(["speed", "--out", "-", "--epochs", str(a.epochs), *common])
        append(Path(a.out), row)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
