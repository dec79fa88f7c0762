"""A fingerprint of what training and generation produce, to show that a refactor changed no behaviour.

    .venv/bin/python -m bench.repro_fingerprint --out fp-before.json   # on the old commit
    .venv/bin/python -m bench.repro_fingerprint --out fp-after.json    # on the new one
    .venv/bin/python -m bench.repro_fingerprint --compare fp-before.json fp-after.json

Trains, on the tiny project of the tests (CPU, one thread, about a minute in all): the diffusion model with
the identity first stage, a VQ-VAE first stage and a diffusion model on it, and every baseline; then
generates 6 windows from each with a fixed seed. The fingerprint is the sha256 of the saved weights (tensor
bytes only: the metadata carries wall time), of the loss columns of `log.csv`, and of the generated samples
and labels. Equal fingerprints mean the same numbers bit for bit.

Compare fingerprints made on one machine: float kernels differ between CPU models (the a433aed file, made on an
Intel Xeon, differs everywhere from the same commit on an AMD EPYC), so the file records the CPU and torch.
References in bench/results: repro_fingerprint_62b87c5_amd-epyc.json since fused AdamW became the diffusion
default (issue 14: round-off in the diffusion weights and samples); repro_fingerprint_1d7b4f1_amd-epyc.json holds
the bits before it (foreach AdamW, `train.adam_impl: foreach`).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

LOSS_COLUMNS = ("step", "epoch", "train_loss", "val_loss", "lr")
STAGE = ["model.first_stage.type=vqvae", "model.first_stage.factor=4", "model.first_stage.latent_channels=2",
         "model.first_stage.hidden_channels=8", "model.first_stage.codebook_size=16",
         "model.first_stage.train.max_steps=6", "model.first_stage.train.batch_size=4",
         "model.first_stage.train.epoch_steps=3", "model.first_stage.train.crop=16",
         "model.first_stage.train.warmup_steps=0"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _weights_sha(path: Path) -> str:
    from safetensors import safe_open

    h = hashlib.sha256()
    with safe_open(str(path), framework="pt") as f:
        for k in sorted(f.keys()):
            h.update(k.encode() + f.get_tensor(k).reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _log_sha(path: Path) -> str:
    with open(path, newline="") as f:
        rows = [[r.get(c, "") for c in LOSS_COLUMNS] for r in csv.DictReader(f)]
    return _sha(json.dumps(rows).encode())


def _generate(args: Sequence[str], out: Path) -> str:
    from dataloader.synthetic import read_synthetic
    from generate import main as generate_main
    from tests.tiny_run import reset_accelerate

    reset_accelerate()
    rc = generate_main([*args, "--samples", "6", "--batch_size", "3", "--seed", "7", "--out", str(out)])
    if rc not in (0, None):
        raise SystemExit(f"error: generate: exit code {rc}")
    x, y, _ = read_synthetic(out)
    return _sha(np.ascontiguousarray(x).tobytes() + np.ascontiguousarray(y).tobytes())


def _diffusion(project: Path, root: Path, name: str, extra: Sequence[str]) -> dict[str, str]:
    from tests.tiny_run import run_train, tiny_config

    out = root / name
    overrides = [f"train.out_dir={out}", *extra]
    run_train(tiny_config(project, *overrides))
    gen = _generate(["--config", str(project), *overrides], root / f"{name}.h5")
    return {"weights": _weights_sha(out / "model.safetensors"), "log": _log_sha(out / "log.csv"), "samples": gen}


def _first_stage(project: Path, root: Path) -> tuple[dict[str, str], list[str]]:
    from first_stage.train_loop import train_first_stage
    from tests.tiny_run import reset_accelerate, tiny_config

    out = root / "vqvae"
    overrides = [*STAGE, f"model.first_stage.out_dir={out}"]
    reset_accelerate()
    train_first_stage(tiny_config(project, *overrides), progress=False)
    return ({"weights": _weights_sha(out / "first_stage.safetensors"), "log": _log_sha(out / "log.csv")},
            overrides)


def _baseline(project: Path, root: Path, kind: str) -> dict[str, str]:
    from baselines.train_loop import train
    from tests.test_baselines import TINY
    from tests.tiny_run import reset_accelerate, tiny_config

    out = root / kind
    overrides = [f"model.type={kind}", f"train.out_dir={out}", *TINY]
    reset_accelerate()
    train(tiny_config(project, *overrides), progress=False)
    gen = _generate(["--config", str(project), *overrides], root / f"{kind}.h5")
    return {"weights": _weights_sha(out / "model.safetensors"), "log": _log_sha(out / "log.csv"), "samples": gen}


def fingerprint() -> dict[str, dict[str, str]]:
    """{run name: {weights, log, samples: sha256 prefix}} for every tiny run."""
    from tests.tiny_run import make_tiny_project

    torch.set_num_threads(1)   # one thread: reductions in one fixed order
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project = make_tiny_project(root / "project")
        result = {"diffusion-identity": _diffusion(project, root, "diffusion-identity", [])}
        result["first-stage-vqvae"], stage = _first_stage(project, root)
        result["diffusion-vqvae"] = _diffusion(project, root, "diffusion-vqvae", stage)
        for kind in ("gan", "wgan_gp", "lstm_gan", "timegan", "timevae"):
            result[f"baseline-{kind}"] = _baseline(project, root, kind)
    return result


def machine() -> dict[str, str]:
    """The CPU model and torch version: fingerprints compare only within one of these."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown") if Path("/proc/cpuinfo").exists() else "unknown"
    return {"cpu": cpu, "torch": torch.__version__}


def compare(a: dict, b: dict) -> list[str]:
    """The (run, field) pairs whose fingerprints differ or exist on one side only (the machine aside)."""
    a, b = ({k: v for k, v in d.items() if k != "_machine"} for d in (a, b))
    return [f"{run}.{k}" for run in sorted(set(a) | set(b))
            for k in sorted(set(a.get(run, {})) | set(b.get(run, {})))
            if a.get(run, {}).get(k) != b.get(run, {}).get(k)]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="write the fingerprint here as JSON (else print it)")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                   help="compare two fingerprint files; exit code 1 when they differ")
    a = p.parse_args(argv)
    if a.compare:
        fa, fb = (json.loads(f.read_text()) for f in a.compare)
        if fa.get("_machine") != fb.get("_machine"):
            print(f"note: made on different machines or versions ({fa.get('_machine')} vs {fb.get('_machine')}): "
                  "expect differences that are not a change of behaviour")
        diff = compare(fa, fb)
        print("identical" if not diff else "differ: " + ", ".join(diff))
        return 1 if diff else 0
    text = json.dumps({"_machine": machine(), **fingerprint()}, indent=1, sort_keys=True) + "\n"
    if a.out:
        a.out.write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
