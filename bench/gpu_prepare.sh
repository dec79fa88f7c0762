#!/usr/bin/env bash
# Make what the GPU job carries (docs/gpu.md), here, before a session's one call of the device tool:
#   .gpu/whl/   wheels (CPython 3.12, manylinux x86_64) of the packages the device image lacks
#   .gpu/data/  the prepared CTG and LUDB files (the device gets the repository, not ../shared/data)
# .gpu/ is ignored through .git/info/exclude, never committed; name it in the run's `carry`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
mkdir -p .gpu/whl .gpu/data
# the image has torch, numpy, scipy, pandas, h5py, matplotlib, accelerate, safetensors, scikit-learn, rich,
# requests, fsspec, torchdiffeq (docs/gpu.md); these are the rest that training, generation and eval import
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/whl \
  tables==3.11.1 blosc2==4.15.0 numexpr==2.14.2 ndindex==1.10.1 py-cpuinfo wfdb==4.3.1 neurokit2==0.3.0 \
  pywavelets torchsde==0.2.6 trampoline==0.1.2 dtaidistance==2.5.1 edfio==0.4.18 k-diffusion==0.1.1.post1
for cfg in configs/ctg/sampling-diffusion.yaml configs/ecg/ludb-diffusion-vqvae.yaml; do
  out=.gpu/data/$(basename "$("$PY" - "$cfg" <<'PYEOF'
import sys
from dataloader.config import load_config
print(load_config(sys.argv[1]).data.prepared)
PYEOF
)")
  [ -f "$out" ] || OMP_NUM_THREADS=1 "$PY" -m tools.prepare_data --config "$cfg" data.prepared="$out"
done
du -sh .gpu/whl .gpu/data
echo "carry: [\".gpu\"]; the tree that travels must stay under 64 MiB (du above + the repository)"
