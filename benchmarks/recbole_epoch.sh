#!/usr/bin/env bash
# One training epoch of RecBole 1.2.1 SASRec on ml-100k next to ours at the same size, in one session.
#
#   bash benchmarks/recbole_epoch.sh        # run on a quiet machine; about 4 minutes here
#
# RecBole: ../shared/bench/peers/run_recbole.py with the flags of PEERS.md's SASRec row (hidden 64,
# 2 layers, 2 heads, inner 256, max len 50, CE over all items, dropout 0.2/0.2, batch 256, lr 1e-3,
# 2 threads), --epochs 1; its epoch time is RecBole's own "epoch 0 training [time: ...]" (training only).
# Ours: benchmarks/sequence_models.py speed (median of 3 training epochs, no validation).
# RecBole gets its own venv (RECBOLE_VENV, default bench-out/recbole-venv) from peers/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-../shared/bench}
DATA=${FUSIONREC_DATA:-../shared/datasets}
VENV=${RECBOLE_VENV:-bench-out/recbole-venv}
OUT=${OUT:-bench-out/recbole-epoch}
mkdir -p "$OUT"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch==2.13.0            # the CPU wheel on the development machines
  "$VENV/bin/pip" install -q -r "$BENCH/peers/requirements.txt"
fi
[ -f "$OUT/ml100k-loo/train.tsv" ] || "$VENV/bin/python" "$BENCH/evalkit.py" split \
  --ratings "$DATA/ml-100k/u.data" --format ml100k --protocol loo --out "$OUT/ml100k-loo"
# a private copy of the peer scripts (they write outputs/ next to themselves; peers/evalkit.py is a link)
rm -rf "$OUT/peers" && cp -r "$BENCH/peers" "$OUT/peers" && rm -f "$OUT/peers/evalkit.py" && cp "$BENCH/evalkit.py" "$OUT/peers/"
PY=$(cd "$VENV" && pwd)/bin/python
SPLIT=$(cd "$OUT/ml100k-loo" && pwd)
echo "[recbole] $(uptime)"
( cd "$OUT/peers" && "$PY" run_recbole.py --split "$SPLIT" --history both --threads 2 \
    --train-batch-size 256 --lr 1e-3 --max-len 50 --epochs 1 --stopping-step 10 --eval-step 1 \
    --valid-metric NDCG@10 --model SASRec --hidden 64 --layers 2 --heads 2 --dropout 0.2 --attn-dropout 0.2 \
    --time-budget-min 30 ) > "$OUT/recbole.log" 2>&1 || { tail -30 "$OUT/recbole.log"; exit 1; }
RB=$(sed 's/\x1b\[[0-9;]*m//g' "$OUT/recbole.log" | grep -oE "epoch 0 training \[time: [0-9.]+s" | grep -oE "[0-9.]+s$" | tr -d s)
echo "RecBole SASRec training epoch: ${RB} s (PEERS.md: 128 s)"
echo "[ours] $(uptime)"
.venv/bin/python benchmarks/sequence_models.py speed --data-dir "$DATA" --epochs 3 --out "$OUT/ours.jsonl" | tee "$OUT/ours.log"
OURS=$(tail -1 "$OUT/ours.jsonl" | .venv/bin/python -c 'import json,sys; print(json.loads(sys.stdin.read())["seconds_per_epoch"])')
echo "[end] $(uptime)"
echo "RECBOLE_EPOCH_S=$RB OURS_EPOCH_S=$OURS RATIO=$(.venv/bin/python -c "print(round($OURS / $RB, 4))")"
