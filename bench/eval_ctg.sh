#!/usr/bin/env bash
# The committed CTG evaluation (bench/results/eval_ctg/ and bench/results/eval_ctg_samplers/):
#  1. N_MAIN windows from the trained model with the default sampler (dpm_solver, 20 steps), every metric,
#     figures (also the file bench.eval_speed times);
#  2. every sampler at ~20 network evaluations (NFE), N_SWEEP windows each, a reduced metric set and GRU budget.
# Needs a trained model in $RUN (train.py --config configs/ctg/sampling-diffusion.yaml ... train.out_dir=$RUN).
set -euo pipefail
PY=${PY:-.venv/bin/python}
RUN=${RUN:-runs/ctg-sampling-small}
SIZE=${SIZE:-small}
OUT=${OUT:-runs/eval-ctg}
N_MAIN=${N_MAIN:-128}      # windows from the default sampler (2000 did not fit the session on the shared CPU)
N_SWEEP=${N_SWEEP:-32}     # windows per sampler in the sweep
GEN="$PY generate.py --config configs/ctg/sampling-diffusion.yaml model.size=$SIZE train.out_dir=$RUN"
mkdir -p "$OUT"

if [ "${SKIP_MAIN:-0}" != 1 ]; then
  f="$OUT/dpm_solver-20-main.h5"
  [ -f "$f" ] || $GEN --samples "$N_MAIN" --sampler dpm_solver --steps 20 --out "$f"
  # the floor row uses as many train-patient windows as the file has, so that FID and the GRU scores compare
  $PY eval.py --config configs/ctg/eval.yaml eval.n_floor="$N_MAIN" --synthetic "$f" --out bench/results/eval_ctg
fi

# sampler -> steps giving ~20 NFE (2nd-order and 2-NFE/step samplers take 10 steps; k_dpm_adaptive has no
# fixed NFE and is left out)
files=()
for s in ddpm:20 ddim:20 plms:20 dpm_solver:20 k_euler:20 k_euler_a:20 k_heun:10 k_dpm_2:10 k_dpm_2_a:10 \
         k_lms:20 k_dpmpp_2m:20 k_dpmpp_2s_a:10 k_dpmpp_sde:10 k_dpmpp_2m_sde:20 k_dpmpp_3m_sde:20 k_dpm_fast:20; do
  name=${s%%:*}; steps=${s##*:}
  f="$OUT/$name-$steps.h5"
  [ -f "$f" ] || $GEN --samples "$N_SWEEP" --sampler "$name" --steps "$steps" --batch_size "$N_SWEEP" --out "$f"
  files+=("$f")
done
$PY eval.py --config configs/ctg/eval.yaml --synthetic "${files[@]}" --no-figures \
    --metrics fid is accuracy trts discriminative rmse_prd mmd diversity physio \
    eval.n_floor="$N_SWEEP" eval.discriminative.runs=2 eval.discriminative.iterations=300 \
    --out bench/results/eval_ctg_samplers
