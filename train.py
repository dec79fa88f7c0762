"""Train a diffusion model (or a GAN / VAE baseline: model.type, see baselines/) on a prepared data file.

    python train.py --config configs/ctg/diffusion-identity.yaml [key=value ...] [--resume latest|DIR] [--dry-run]
    accelerate launch [--multi_gpu --num_processes N] [--mixed_precision bf16] train.py --config ...
    torchrun --nproc_per_node 2 train.py --config ...    (data parallel on CPU too: DDP over gloo)

Writes into train.out_dir: config.yaml (the resolved config), log.csv (one row per epoch), plots/ (EMA
samples beside real validation windows each epoch), checkpoints/step-XXXXXXX/ (resumable: model, EMA,
optimizer, LR schedule, RNG and data position) and model.safetensors (EMA weights + config + data
description; what generate.py reads). Prepare the data first: python -m tools.prepare_data --config ...
"""
from __future__ import annotations

import argparse
from typing import Sequence

from dataloader.cli import add_config_args, make_parser, run_main
from dataloader.config import load_config
from dataloader.errors import UserError


def main(argv: Sequence[str] | None = None) -> int:
    doc = __doc__.split("\n\n")
    p = make_parser("train.py", doc[0] + "\n\n" + doc[1], epilog="\n\n".join(doc[2:]))
    # every help text below says its default itself (most come from the config), so argparse's "(default: None)"
    # would only mislead
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    add_config_args(p)
    p.add_argument("--resume", metavar="latest|DIR", default=None,
                   help="continue a run: 'latest' = newest checkpoint in <train.out_dir>/checkpoints, or a "
                        "checkpoint folder; the result is identical to an uninterrupted run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    p.add_argument("--stage", default="all", choices=("first_stage", "diffusion", "sr", "all"),
                   help="what to train: the learned first stage(s), the diffusion model, the super-resolution "
                        "model, or all the config needs in that order (default: all)")
    p.add_argument("--retrain", action="store_true",
                   help="train a stage again even if its trained file exists (removes its checkpoints and file "
                        "first); without it such a stage is skipped")
    a = p.parse_intermixed_args(argv)  # overrides may come before or after options
    cfg = load_config(a.config, a.overrides)
    if cfg.get("train") is None or cfg.get("model") is None:
        raise UserError(a.config, "training needs the `model` and `train` sections (see docs/config_reference.md)")
    if a.dry_run:
        print(cfg.yaml(), end="")
        return 0
    from evaluation.plots.recon import save_recon_png
    from evaluation.sample_grid import save_compare_png
    from training import trainer

    # diffusion / autoencoder: each stage the config needs, in order (diffusion/stages.py); a GAN / VAE
    # baseline: one run, same data, outputs and resume, its own update rule (baselines/train_loop.py)
    train_kind = trainer(cfg.model.type)
    for result in train_kind(cfg, a.stage, retrain=a.retrain, resume=a.resume, progress=not a.no_progress,
                             plot_fns={"first_stage": save_recon_png, "samples": save_compare_png}):
        if result is not None and result.is_main:
            print(f"step {result.step}: model {result.model_file}, checkpoint {result.checkpoint}"
                  + (" (stopped early; continue with --resume latest)" if result.stopped_early else ""))
    return 0


if __name__ == "__main__":
    run_main(main)
