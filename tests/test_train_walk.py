"""The walk from train.py's config to the UNet: the model is built once and the prepared file read once
(diffusion/stages.py's preflight hands both to training), and that reuse changes no weight."""
from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.tiny_run import argv, make_tiny_project, reset_accelerate, run_train, tiny_config
from train import main as train_main


def test_train_py_builds_the_model_once_and_reads_the_prepared_file_once(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import dataloader.prepared as prepared
    import diffusion.model as model

    project = make_tiny_project(tmp_path)
    constructed: list[str] = []
    h5_opens: list[str] = []
    built: list[tuple] = []
    real_init, real_open, real_build = prepared.PreparedFile.__init__, prepared.open_h5, model.build_diffusion

    def counting_init(self: prepared.PreparedFile, path: str | Path) -> None:
        constructed.append(str(path))
        real_init(self, path)

    def counting_open(path: str | Path, *a: object, **k: object) -> object:
        h5_opens.append(str(path))
        return real_open(path, *a, **k)

    def counting_build(*a: object, **k: object) -> object:
        built.append(a)
        return real_build(*a, **k)

    monkeypatch.setattr(prepared.PreparedFile, "__init__", counting_init)
    monkeypatch.setattr(prepared, "open_h5", counting_open)
    monkeypatch.setattr(model, "build_diffusion", counting_build)
    reset_accelerate()
    out = tmp_path / "walk"
    assert train_main(argv("--config", project, "--no-progress", f"train.out_dir={out}", "train.max_steps=4")) == 0
    assert (out / "model.safetensors").is_file()
    assert constructed == [str(tmp_path / "prepared.h5")]
    assert h5_opens == [str(tmp_path / "prepared.h5")]
    assert len(built) == 1

    # the model the preflight built (and the RNG state after it) trains to the same weights as a plain train()
    monkeypatch.undo()
    plain = tmp_path / "plain"
    run_train(tiny_config(project, f"train.out_dir={plain}", "train.max_steps=4"))
    a, b = load_file(out / "model.safetensors"), load_file(plain / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(bool((a[k] == b[k]).all()) for k in a)


def test_every_model_type_has_a_training_entry() -> None:
    """training.MODEL_KINDS names one callable entry per model type of the config, the baselines' one
    for exactly the registered baselines; an unknown kind is refused at model.type."""
    from baselines import list_baselines
    from dataloader.config.typed import from_dict
    from dataloader.errors import UserError
    from diffusion.config import ModelConfig
    from training import MODEL_KINDS, trainer

    assert [from_dict(ModelConfig, {"type": k}, "model", "f.yaml").type for k in MODEL_KINDS] == list(MODEL_KINDS)
    assert sorted(k for k, v in MODEL_KINDS.items() if v.startswith("baselines.")) == sorted(list_baselines())
    assert all(callable(trainer(k)) for k in MODEL_KINDS)
    with pytest.raises(UserError, match="model.type"):
        trainer("nope")
