#!/usr/bin/env bash
# `make demo`: the whole path on a laptop CPU, about 10 minutes in all.
#   1. prepare CTU-UHB CTG at 4 Hz (configs/ctg/demo.yaml, the data of sampling-diffusion.yaml -> data/ctg-4hz.h5)
#   2. train a tiny model (configs/ctg/demo.yaml: 2400 steps in 8 epochs, ~6-7 minutes on 2 cores)
#   3. generate 64 windows from the class CSV configs/ctg/demo-classes.csv (pH class x delivery)
#   4. plot them beside real test windows with the same labels
#   5. score them against 512 windows of the test patients with eval.py (the metrics that need no FCN:
#      MMD, nearest-neighbour RMSE/PRD, diversity, CTG physiology), next to the real-vs-real floor
# Rerunning continues the same run (a finished run is not trained again).
# GLIBC_TUNABLES comes from the Makefile (docs/design.md section 9); run it as `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CFG=configs/ctg/demo.yaml
OUT=${DEMO_OUT:-runs/demo}
# the budget is in steps (configs/ctg/demo.yaml, no max_minutes), so however loaded the machine is the run ends
# with its 8 epoch rows in log.csv and 8 epoch plots; DEMO_OUT moves the run folder
TRAIN=("train.out_dir=$OUT")

echo "== 1/5 prepare data ($CFG)"
"$PY" -m tools.prepare_data --config "$CFG"

echo "== 2/5 train a tiny model (2400 steps, 8 epochs)"
RESUME=()
if ls "$OUT"/checkpoints/step-* >/dev/null 2>&1; then RESUME=(--resume latest); fi
"$PY" train.py --config "$CFG" "${TRAIN[@]}" "${RESUME[@]}"

echo "== 3/5 generate 64 windows from configs/ctg/demo-classes.csv"
"$PY" generate.py --config "$CFG" "${TRAIN[@]}" --samples configs/ctg/demo-classes.csv \
    --out "$OUT/synthetic.h5" --plot "$OUT/generated"

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
