"""Which stages a config trains, in order, and where each one's trained file lives (`train.py --stage`).

    first_stage   every learned first stage the config uses (`model.first_stage`, and `sr.model.first_stage`
                  on the full-rate data); file <first_stage.out_dir>/first_stage.safetensors
    diffusion     the diffusion model (`model.type: diffusion`); file <train.out_dir>/model.safetensors
    sr            the super-resolution model (an `sr` section); file <sr.train.out_dir>/model.safetensors
`--stage all` runs the stages the config needs in this order. A stage whose trained file exists is skipped
(said on stdout) unless `--retrain` (which first removes that stage's checkpoints and file) or `--resume`
(which continues its newest checkpoint up to max_steps).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from dataloader.config import Config
from first_stage.config import LEARNED_FIRST_STAGES
from dataloader.errors import UserError
from first_stage.files import first_stage_file

STAGES = ("first_stage", "diffusion", "sr")


@dataclass
class StageRun:
    """One training run: its stage name, the (derived) config it trains with and its output."""

    stage: str
    cfg: Config
    out_dir: Path
    model_file: Path
    what: str                                   # for messages, e.g. "vqvae first stage of sr.model"


def _first_stage_run(cfg: Config, model_cfg: Any, prepared: str, what: str) -> StageRun:
    fc = model_cfg.first_stage
    data = cfg.data if prepared == cfg.data.prepared else _with(cfg.data, prepared=prepared)
    sub = cfg.replace(model=_with(cfg.model, first_stage=fc), data=data)
    return StageRun("first_stage", sub, Path(fc.out_dir), first_stage_file(fc.out_dir), what)


def _with(obj: Any, **kw: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **kw)


def sr_config(cfg: Config) -> Config:
    """The config the SR model trains with: `data.prepared` = the full-rate file and `train` with the SR
    section's overrides (out_dir, max_steps, ...); `model` and `sr` stay (the SR model reads both)."""
    s = cfg.sr
    over = {k: getattr(s.train, k) for k in ("out_dir", "max_steps", "max_minutes", "batch_size", "lr", "epoch_steps")
            if getattr(s.train, k) is not None}
    return cfg.replace(data=_with(cfg.data, prepared=s.prepared or cfg.data.prepared), train=_with(cfg.train, **over))


def plan(cfg: Config, stage: str = "all") -> list[StageRun]:
    """The runs of `stage` ("all" = every stage the config needs), in training order."""
    if stage not in STAGES + ("all",):
        raise UserError("--stage", f"unknown stage {stage!r}; valid: {', '.join(STAGES + ('all',))}")
    m, sr = cfg.model, cfg.get("sr")
    runs: list[StageRun] = []
    if m.first_stage.type in LEARNED_FIRST_STAGES:
        runs.append(_first_stage_run(cfg, m, cfg.data.prepared, f"{m.first_stage.type} first stage of model"))
    if sr is not None and sr.model.first_stage.type in LEARNED_FIRST_STAGES:
        r = _first_stage_run(cfg, sr.model, sr.prepared or cfg.data.prepared,
                             f"{sr.model.first_stage.type} first stage of sr.model")
        if not any(x.out_dir == r.out_dir for x in runs):
            runs.append(r)
    if m.type == "diffusion":
        out = Path(cfg.train.out_dir)
        runs.append(StageRun("diffusion", cfg, out, out / "model.safetensors", "diffusion model"))
    if sr is not None:
        out = Path(sr.train.out_dir)
        runs.append(StageRun("sr", sr_config(cfg), out, out / "model.safetensors", "super-resolution model"))
    chosen = [r for r in runs if stage in ("all", r.stage)]
    if not chosen and stage == "all":
        raise UserError("model", "nothing to train: no learned first stage, no diffusion model, no sr section")
    if not chosen:
        needs = sorted({r.stage for r in runs}, key=STAGES.index)
        raise UserError("--stage", f"this config has no {stage} stage (it trains: {', '.join(needs) or 'nothing'})")
    return chosen


def clear(run: StageRun) -> None:
    """--retrain: remove a stage's checkpoints and trained file (nothing else in its folder)."""
    ck = run.out_dir / "checkpoints"
    if ck.is_dir():
        shutil.rmtree(ck)
    run.model_file.unlink(missing_ok=True)


@dataclass
class Prebuilt:
    """What the preflight read and built for one run, handed to its training so neither is done twice."""

    data: Any                                   # the run's PreparedFile (one object per prepared file)
    model: Any                                  # the untrained model, built after torch.manual_seed(train.seed)
    rng: Any                                    # the global torch RNG state right after that build


def preflight(runs: list[StageRun]) -> list[Prebuilt]:
    """Check every planned run before the first one trains (bad input leaves nothing behind): the models
    can be built for their data (window and latent lengths, SR rates). Each prepared file is read once, and
    each model is built as its training would build it (from the seed), so training reuses both."""
    import torch

    from dataloader.dataset import WindowDataset
    from dataloader.prepared import open_prepared
    from first_stage import build_first_stage

    from .model import build_diffusion
    from .superres import build_sr

    files: dict[str, Any] = {}
    built = []
    for r in runs:
        path = str(r.cfg.data.prepared)
        if path not in files:
            files[path] = open_prepared(path)
        ds = WindowDataset(files[path], "train")
        c, n, labels = len(ds.channels), int(ds.window_len), list(ds.label_classes)
        torch.manual_seed(r.cfg.train.seed)  # the initial weights the run's training would draw
        if r.stage == "first_stage":
            model = build_first_stage(r.cfg.model.first_stage, c, n)
        elif r.stage == "diffusion":
            model = build_diffusion(r.cfg.model, c, n, labels)
        else:
            model = build_sr(r.cfg, c, n, labels, float(ds.fs))  # ds: the full-rate file (sr_config)
        built.append(Prebuilt(files[path], model, torch.get_rng_state()))
    return built


def run_stages(cfg: Config, stage: str = "all", *, retrain: bool = False, resume: Optional[str] = None,
               plot_fns: Optional[dict[str, Callable[..., Any]]] = None, progress: bool = True,
               say: Callable[[str], None] = print) -> list[Any]:
    """Train the planned runs in order; returns each run's TrainResult (None for a skipped one). `plot_fns`:
    "first_stage" draws reconstructions, "samples" synthetic beside real windows (train.py passes evaluation's)."""
    from first_stage.train_loop import train_first_stage
    from .train_loop import train

    plot_fns = plot_fns or {}
    runs = plan(cfg, stage)
    results: list[Any] = []
    for r, pre in zip(runs, preflight(runs)):
        if r.model_file.is_file() and not retrain and not resume:
            say(f"{r.stage}: {r.what} already trained ({r.model_file}); skipped (--retrain to train it again)")
            results.append(None)
            continue
        if retrain:
            clear(r)
        say(f"{r.stage}: training the {r.what} -> {r.model_file}")
        # --resume with several stages: the ones without checkpoints start fresh; a single stage keeps the
        # plain meaning (no checkpoint there is an error)
        res_arg = resume if resume and (len(runs) == 1 or (r.out_dir / "checkpoints").is_dir()) else None
        if r.stage == "first_stage":
            res = train_first_stage(r.cfg, resume=res_arg, plot_fn=plot_fns.get("first_stage"), progress=progress,
                                    prebuilt=pre)
        elif r.stage == "diffusion":
            res = train(r.cfg, resume=res_arg, plot_fn=plot_fns.get("samples"), progress=progress, prebuilt=pre)
        else:
            from .superres import build_sr_for

            res = train(r.cfg, resume=res_arg, plot_fn=plot_fns.get("samples"), progress=progress,
                        build=build_sr_for(r.cfg), prebuilt=pre)
        results.append(res)
        if res is not None and res.stopped_early:
            say(f"{r.stage}: stopped early at step {res.step}; continue with --resume latest")
            break
    return results
