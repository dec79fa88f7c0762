"""bench/gpu_ship.py, the one-call GPU job: what it packs for the return trip and how it splits the budget
(the device tool returns at most 8 files of 16 MiB; nothing here needs a GPU)."""
from __future__ import annotations

import tarfile
from pathlib import Path

import bench.gpu_ship as job


def _run_folder(root: Path) -> Path:
    run = root / "ctg-4hz"
    for rel, size in (("model/model.safetensors", 3000), ("model/config.yaml", 10), ("model/log.csv", 10),
                      ("model/plots/epoch-0001.png", 10), ("model/plots/epoch-0002.png", 10),
                      ("model/checkpoints/step-0000010/trainer_state.json", 5),
                      ("model/checkpoints/step-0000020/trainer_state.json", 5),
                      ("model/checkpoints/step-0000020/optimizer.bin", 5000),
                      ("first_stage/checkpoints/step-0000005/trainer_state.json", 5),
                      ("synthetic.h5", 4000), ("eval/report.json", 10)):
        p = run / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * size)
    return run


def test_pack_keeps_what_ship_needs_and_splits_in_parts(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    run = _run_folder(tmp_path / "runs")
    out = tmp_path / "out"
    out.mkdir()
    assert job._pack(run, out, "ctg-4hz") == ["ctg-4hz.tar"]
    with tarfile.open(out / "ctg-4hz.tar") as t:
        names = set(t.getnames())
    assert names == {"ctg-4hz/model/model.safetensors", "ctg-4hz/model/config.yaml", "ctg-4hz/model/log.csv",
                     "ctg-4hz/model/plots/epoch-0002.png", "ctg-4hz/eval/report.json",
                     "ctg-4hz/model/checkpoints/step-0000020/trainer_state.json",
                     "ctg-4hz/first_stage/checkpoints/step-0000005/trainer_state.json"}
    monkeypatch.setattr(job, "PART", 2048)  # a tar larger than a part comes back in parts that join up
    parts = job._pack(run, out, "ctg-4hz")
    assert len(parts) >= 2 and not (out / "ctg-4hz.tar").exists()
    joined = b"".join((out / p).read_bytes() for p in sorted(parts))
    (tmp_path / "joined.tar").write_bytes(joined)
    with tarfile.open(tmp_path / "joined.tar") as t:
        assert set(t.getnames()) == names


def test_stages_split_the_training_time_and_share_overrides(tmp_path: Path) -> None:
    ludb = next(j for j in job.JOBS if j.get("first_stage_share"))
    stages = job._stages(ludb, tmp_path / "data", tmp_path / "runs", 100.0, quick=False)
    names = [s for s, _ in stages]
    assert names == ["train_first_stage", "train", "generate", "eval"]
    fs_cmd, dm_cmd = stages[0][1], stages[1][1]
    share = ludb["first_stage_share"]
    assert f"model.first_stage.train.max_minutes={100 * share / 60:.2f}" in fs_cmd
    assert f"train.max_minutes={100 * (1 - share) / 60:.2f}" in dm_cmd
    assert "--stage" in fs_cmd and fs_cmd[fs_cmd.index("--stage") + 1] == "first_stage"
    # every stage reads the same prepared file and run folders
    for _, cmd in stages:
        assert f"data.prepared={tmp_path / 'data' / ludb['prepared']}" in cmd
        assert f"model.first_stage.out_dir={tmp_path / 'runs' / ludb['name'] / 'first_stage'}" in cmd
    ctg = job.JOBS[0]
    assert [s for s, _ in job._stages(ctg, tmp_path, tmp_path, 60.0, quick=False)] == ["train", "generate", "eval"]
