#!/usr/bin/env bash
# `make demo`: the whole path on a laptop CPU, about 10 minutes in all.
#   1. prepare CTU-UHB CTG at 4 Hz (configs/ctg/sampling-diffusion.yaml -> data/ctg-4hz.h5)
#   2. train a tiny model (model.size=tiny) for at most 8 minutes of wall clock on 2 cores
#   3. generate 64 windows from the class CSV configs/ctg/demo-classes.csv (pH class x delivery)
#   4. plot them beside real test windows with the same labels
#   5. score them against 512 windows of the test patients with eval.py (the metrics that need no FCN:
#      MMD, nearest-neighbour RMSE/PRD, diversity, CTG physiology), next to the real-vs-real floor
# Rerunning continues the same run (a finished or time-capped run is not trained again).
# GLIBC_TUNABLES comes from the Makefile (docs/design.md section 9); run it as `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CFG=configs/ctg/sampling-diffusion.yaml
OUT=${DEMO_OUT:-runs/demo}
# max_steps by measurement (bench/results/train_sample_speed.md, 2-core Xeon): a tiny-model step on 16 windows of
# the 1024-sample latent takes ~0.08 s, so 2400 steps of 32 windows take ~6-7 minutes with the epoch checks;
# train.max_minutes=8 stops the run (checkpoint + model file) on a slower or busier machine
TRAIN=(model.size=tiny "train.out_dir=$OUT" train.max_steps=2400 train.max_minutes=8 train.batch_size=32
       train.lr=0.001 train.warmup_steps=100 train.lr_min=0.0001 train.ema_decay=0.995 train.epoch_steps=300
       train.val_batches=4 train.threads=2)

echo "== 1/5 prepare data ($CFG)"
"$PY" -m tools.prepare_data --config "$CFG"

echo "== 2/5 train a tiny model (at most 8 minutes)"
RESUME=()
if ls "$OUT"/checkpoints/step-* >/dev/null 2>&1; then RESUME=(--resume latest); fi
"$PY" train.py --config "$CFG" "${TRAIN[@]}" "${RESUME[@]}"

echo "== 3/5 generate 64 windows from configs/ctg/demo-classes.csv"
"$PY" generate.py --config "$CFG" "${TRAIN[@]}" --samples configs/ctg/demo-classes.csv \
    --out "$OUT/synthetic.h5" --plot "$OUT/generated" --sampler dpm_solver --steps 20 --batch_size 32

echo "== 4/5 evaluate against held-out test patients"
"$PY" eval.py --config configs/ctg/eval.yaml --synthetic "$OUT/synthetic.h5" --out "$OUT/eval" \
    --metrics mmd rmse_prd diversity physio eval.n_real=512 eval.n_floor=64 eval.cache_dir="$OUT/eval-cache"
cat "$OUT/eval/report.md"

echo "== 5/5 done"
cat <<EOF
  training log        $OUT/log.csv
  epoch plots         $OUT/plots/
  resumable states    $OUT/checkpoints/
  model file          $OUT/model.safetensors (EMA weights + config + data description)
  synthetic windows   $OUT/synthetic.h5 (/samples in bpm and nd, /labels; python -m tools.export $OUT/synthetic.h5 --format wfdb --out DIR)
  real vs synthetic   $OUT/generated/generated.png
  evaluation          $OUT/eval/report.md (and report.json, figures/)
EOF
