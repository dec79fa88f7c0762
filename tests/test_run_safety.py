"""Crashes and concurrent runs: a killed run never ends without its model, damaged checkpoints are refused,
a second writer of the same output is refused while the first is untouched, killed runs' temporary
files are removed by the next run, and the same input and seed give the same bytes."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dataloader.cli import run_main
from dataloader.errors import UserError
from dataloader.tensor_file import canonical_safetensors
from tests.tiny_run import make_tiny_project, run_train, tiny_config

ROOT = Path(__file__).resolve().parents[1]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_project(tmp_path_factory.mktemp("safety"))


def _ckpt(out: Path, step: int) -> Path:
    return out / "checkpoints" / f"step-{step:07d}"


def test_killed_before_the_model_write_resumes_to_the_current_model(project: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill after the last checkpoint is in place but before out_dir/model.safetensors is written: the
    old run printed success with no (or a stale) model; now --resume latest installs the current one."""
    import training.train_state as ts

    out = tmp_path / "run"
    cfg = tiny_config(project, f"train.out_dir={out}")
    real = ts.install_inference_files

    def killed(ckpt: Path, out_dir: Path) -> list[Path]:
        if ckpt.name == "step-0000008":
            raise KeyboardInterrupt  # what SIGKILL would do at this point, minus the clean-up
        return real(ckpt, out_dir)

    monkeypatch.setattr(ts, "install_inference_files", killed)
    with pytest.raises(KeyboardInterrupt):
        run_train(cfg)
    monkeypatch.setattr(ts, "install_inference_files", real)
    stale = sha(out / "model.safetensors")  # step 4's file is still there
    assert stale == sha(_ckpt(out, 4) / "inference" / "model.safetensors")
    r = run_train(cfg, resume="latest")
    assert r.step == 8
    assert sha(out / "model.safetensors") == sha(_ckpt(out, 8) / "inference" / "model.safetensors") != stale
    (out / "model.safetensors").unlink()  # and when it is missing altogether
    run_train(cfg, resume="latest")
    assert sha(out / "model.safetensors") == sha(_ckpt(out, 8) / "inference" / "model.safetensors")


@pytest.fixture(scope="module")
def trained(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run stopped at step 4 of 8 (a checkpoint to resume from)."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    run_train(tiny_config(project, f"train.out_dir={out}"), stop_after=4)
    return out


def _resume_fails(project: Path, out: Path, expect: str) -> None:
    with pytest.raises(UserError, match=expect) as e:
        run_train(tiny_config(project, f"train.out_dir={out}"), resume="latest")
    assert "\n" not in str(e.value)


def _damaged_copy(trained: Path, tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    return out, _ckpt(out, 4)


def test_truncated_rng_file_is_refused(project: Path, trained: Path, tmp_path: Path) -> None:
    out, ck = _damaged_copy(trained, tmp_path)
    rng = ck / "random_states_0.pkl"
    rng.write_bytes(rng.read_bytes()[:40])
    _resume_fails(project, out, "does not match the sha256")
    # without the recorded hashes (an older or edited state file) it is still not resumed silently
    state = json.loads((ck / "trainer_state.json").read_text())
    state.pop("files")
    (ck / "trainer_state.json").write_text(json.dumps(state))
    _resume_fails(project, out, "cannot read the checkpoint")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_pickled_optimizer_file_is_refused(project: Path, trained: Path, tmp_path: Path) -> None:
    out, ck = _damaged_copy(trained, tmp_path)
    marker = tmp_path / "ran"
    torch.save({"state": _Payload(marker)}, ck / "optimizer.bin")  # torch.save pickles the payload
    state = json.loads((ck / "trainer_state.json").read_text())
    state["files"]["optimizer.bin"] = sha(ck / "optimizer.bin")  # an attacker can fix the hashes up too
    (ck / "trainer_state.json").write_text(json.dumps(state))
    _resume_fails(project, out, "cannot read the checkpoint")
    assert not marker.exists()


@pytest.mark.parametrize("text", ["[]", '{"step": "4"}', "{"])
def test_malformed_trainer_state_is_refused(project: Path, trained: Path, tmp_path: Path, text: str) -> None:
    out, ck = _damaged_copy(trained, tmp_path)
    (ck / "trainer_state.json").write_text(text)
    with pytest.raises(UserError) as e:
        run_train(tiny_config(project, f"train.out_dir={out}"), resume=str(ck))
    assert "trainer_state.json" in str(e.value) and "\n" not in str(e.value)


def test_next_run_removes_litter_of_killed_runs(project: Path, trained: Path, tmp_path: Path) -> None:
    out, _ = _damaged_copy(trained, tmp_path)
    litter = [out / ".tmp-model.safetensors.k1ll3dxx", out / ".tmp-log.csv.abcdefgh"]
    for p in litter:
        p.write_bytes(b"partial")
    (out / "checkpoints" / ".tmp-step-0000006").mkdir()
    keep = out / ".tmp-syn.h5.partial"  # an unfinished generate.py output kept there is resumable, not litter
    keep.write_bytes(b"unfinished")
    run_train(tiny_config(project, f"train.out_dir={out}"), resume="latest")
    assert not any(p.exists() for p in litter) and keep.exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000004", "step-0000008"]


def _hold_lock(target: Path) -> subprocess.Popen:
    """Another process holding the lock of `target` until its stdin closes."""
    code = ("import sys; from dataloader.lock import exclusive\n"
            f"with exclusive({str(target)!r}, 'test'):\n    print('held', flush=True); sys.stdin.read()")
    p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


def test_second_training_run_on_a_locked_folder_is_refused(project: Path, trained: Path, tmp_path: Path) -> None:
    out, _ = _damaged_copy(trained, tmp_path)
    before = {p: sha(p) for p in out.rglob("*") if p.is_file()}
    holder = _hold_lock(out)
    try:
        _resume_fails(project, out, f"is being written by process {holder.pid}")
    finally:
        holder.communicate("")
    assert {p: sha(p) for p in out.rglob("*") if p.is_file()} == before


def test_second_generate_on_the_same_out_is_refused(project: Path, trained: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """The first writer's live partial file survives; the second gets one line and exit 2."""
    from dataloader.synthetic import partial_path
    from generate import main

    out = tmp_path / "syn.h5"
    partial_path(out).write_bytes(b"the first run's unfinished file")
    holder = _hold_lock(out)
    try:
        with pytest.raises(SystemExit) as e:
            run_main(main, ["--config", str(project), "--samples", "2", "--out", str(out),
                            "--checkpoint", str(trained / "model.safetensors")])
    finally:
        holder.communicate("")
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "being written by process" in err, err
    assert partial_path(out).read_bytes() == b"the first run's unfinished file" and not out.exists()


def test_model_files_are_byte_identical_across_processes(tmp_path: Path) -> None:
    """safetensors writes its header keys in a per-process random order; ours are sorted."""
    code = ("import sys, torch; from dataloader.tensor_file import save_tensors\n"
            "t = {f'w{i}': torch.full((3,), float(i)) for i in range(12)}\n"
            "save_tensors(sys.argv[1], t, {f'k{i}': str(i) for i in range(12)})")
    for name in ("a", "b", "c"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], cwd=ROOT, check=True)
    assert sha(tmp_path / "a") == sha(tmp_path / "b") == sha(tmp_path / "c")
    from safetensors.torch import load

    data = canonical_safetensors({"b": torch.ones(2), "a": torch.zeros(3, dtype=torch.int64)}, {"z": "1", "y": "2"})
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    assert list(header) == sorted(header) and list(header["__metadata__"]) == ["y", "z"] and n % 8 == 0
    back = load(data)
    assert torch.equal(back["b"], torch.ones(2)) and torch.equal(back["a"], torch.zeros(3, dtype=torch.int64))


def test_same_input_and_seed_give_the_same_bytes(project: Path, tmp_path: Path) -> None:
    """Prepared data, trained model and generated file: sha256 of two runs (a second apart) agree."""
    from generate import main as gen_main
    from dataloader.prepare import prepare

    sums = []
    d = tmp_path / "r"  # the same paths both times: they are part of the resolved config stored in each file
    for _ in range(2):
        shutil.rmtree(d, ignore_errors=True)
        cfg = tiny_config(project, f"data.prepared={d}/prepared.h5", f"train.out_dir={d}/run",
                          "train.max_steps=2", "train.epoch_steps=2")
        d.mkdir()
        prepare(cfg, workers=1)
        run_train(cfg)
        with pytest.raises(SystemExit):
            run_main(gen_main, ["--config", str(project), f"data.prepared={d}/prepared.h5",
                                f"train.out_dir={d}/run", "--samples", "3", "--out", str(d / "syn.h5")])
        sums.append([sha(d / "prepared.h5"), sha(d / "run" / "model.safetensors"), sha(d / "syn.h5")])
        time.sleep(1.1)  # a wall-clock stamp anywhere would now differ
    assert sums[0] == sums[1]


def test_prepare_removes_temporaries_of_a_killed_preparation(project: Path, tmp_path: Path) -> None:
    from dataloader.prepare import prepare

    target = tmp_path / "prepared.h5"
    litter = tmp_path / ".tmp-prepared.h5.x7k2m9qa"  # mkstemp's name for a write killed mid-way
    litter.write_bytes(b"half an HDF5 file")
    other = tmp_path / ".tmp-other.h5.x7k2m9qa"  # another output's temporary is not ours to remove
    other.write_bytes(b"")
    prepare(tiny_config(project, f"data.prepared={target}"), workers=1)
    assert target.is_file() and not litter.exists() and other.exists()


def test_second_preparation_of_the_same_output_is_refused(project: Path, tmp_path: Path) -> None:
    from dataloader.prepare import prepare

    target = tmp_path / "prepared.h5"
    holder = _hold_lock(target)
    try:
        with pytest.raises(UserError, match="being written by process"):
            prepare(tiny_config(project, f"data.prepared={target}"), workers=1)
    finally:
        holder.communicate("")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
