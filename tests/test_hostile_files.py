"""Hostile HDF5 files: a pickled attribute (or object array, or external link) planted in a prepared or
synthetic file never runs code, in any entry point that reads one; each refuses the file with one line,
exit code 2, and the payload's marker file is never created."""
from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest
import tables

from dataloader.cli import run_main
from dataloader.errors import UserError
from dataloader.h5safe import open_h5
from dataloader.synthetic import partial_path

from .tiny_run import make_tiny_project, run_train, tiny_config


class _Payload:
    """Unpickling this runs `touch marker`: what an attacker would plant."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def plant_attribute(path: Path, marker: Path, node: str = "/") -> None:
    """Add a protocol-0 pickle (its bytes end in '.', so PyTables would unpickle it) as an attribute."""
    with tables.open_file(str(path), "a") as f:
        f.get_node(node)._v_attrs.note = np.bytes_(pickle.dumps(_Payload(marker), protocol=0))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained project and a synthetic file generated from it."""
    from generate import main as gen_main

    cfg = make_tiny_project(tmp_path_factory.mktemp("hostile"))
    run_train(tiny_config(cfg, "train.max_steps=2", "train.epoch_steps=2"))
    with pytest.raises(SystemExit) as e:
        run_main(gen_main, ["--config", str(cfg), "--samples", "3", "--out", str(cfg.parent / "syn.h5")])
    assert e.value.code == 0
    return cfg


def _refused(main: Callable[[Sequence[str] | None], int | None], args: list[str], marker: Path,
             capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        run_main(main, [str(a) for a in args])
    err = capsys.readouterr().err
    assert not marker.exists(), "the pickled payload ran"
    assert e.value.code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "unsafe HDF5 file" in err, err


def test_trusting_pytables_would_run_the_payload(tmp_path: Path) -> None:
    """The threat is real: read without our guard (a fresh interpreter), the attribute runs its command."""
    import subprocess
    import sys

    f, marker = tmp_path / "x.h5", tmp_path / "ran"
    with tables.open_file(str(f), "w") as h5:
        h5.create_array("/", "x", np.arange(3))
    plant_attribute(f, marker)
    code = f"import tables; h5 = tables.open_file({str(f)!r}); h5.root._v_attrs.note; h5.close()"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    assert marker.exists()


def test_train_refuses_planted_prepared_file(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from train import main

    bad, marker = tmp_path / "prepared.h5", tmp_path / "ran"
    shutil.copy(project.parent / "prepared.h5", bad)
    plant_attribute(bad, marker, "/segments/data")  # any node, not only the root
    _refused(main, ["--config", project, f"data.prepared={bad}", f"train.out_dir={tmp_path / 'run'}"],
             marker, capsys)
    assert not (tmp_path / "run").exists()


def test_inspect_refuses_planted_prepared_file(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tools.inspect import main

    bad, marker = tmp_path / "prepared.h5", tmp_path / "ran"
    shutil.copy(project.parent / "prepared.h5", bad)
    plant_attribute(bad, marker)
    _refused(main, [bad], marker, capsys)


def test_eval_refuses_planted_synthetic_file(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import eval as eval_cli

    bad, marker = tmp_path / "syn.h5", tmp_path / "ran"
    shutil.copy(project.parent / "syn.h5", bad)
    plant_attribute(bad, marker)
    _refused(eval_cli.main, ["--config", project, "--synthetic", bad, "--out", tmp_path / "ev",
                             "--metrics", "mmd", "eval.physio.kind=none"], marker, capsys)
    assert not (tmp_path / "ev").exists()


def test_export_refuses_planted_synthetic_file(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tools.export import main

    bad, marker = tmp_path / "syn.h5", tmp_path / "ran"
    shutil.copy(project.parent / "syn.h5", bad)
    plant_attribute(bad, marker, "/samples")
    _refused(main, [bad, "--format", "csv", "--out", tmp_path / "csv"], marker, capsys)
    assert not (tmp_path / "csv").exists()


def test_generate_refuses_planted_partial_file(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An unfinished file planted where generate.py would continue one is refused, not opened trustingly."""
    from generate import main

    out, marker = tmp_path / "syn.h5", tmp_path / "ran"
    shutil.copy(project.parent / "syn.h5", partial_path(out))
    plant_attribute(partial_path(out), marker)
    _refused(main, ["--config", project, "--samples", "3", "--out", out], marker, capsys)
    assert not out.exists()


def test_object_arrays_and_external_links_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    objs, link = tmp_path / "objs.h5", tmp_path / "link.h5"
    with tables.open_file(str(objs), "w") as f:
        f.create_vlarray("/", "samples", tables.ObjectAtom()).append(_Payload(marker))
    with tables.open_file(str(link), "w") as f:
        f.create_external_link("/", "samples", f"{objs}:/samples")
    for path, why in ((objs, "pickled Python objects"), (link, "external link")):
        with pytest.raises(UserError, match=why):
            open_h5(path, "r", str(path))
    assert not marker.exists()
    # reading the object array through the guarded module never unpickles either
    with tables.open_file(str(objs)) as f:
        with pytest.raises(pickle.UnpicklingError):
            f.root.samples[0]
    assert not marker.exists()


def test_plain_files_still_open(project: Path) -> None:
    """The guard refuses nothing that the project writes."""
    for name in ("prepared.h5", "syn.h5"):
        with open_h5(project.parent / name, "r", name) as f:
            assert len(list(f.walk_nodes("/"))) > 1
