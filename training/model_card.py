"""The model card of a shipped model (models/<name>/): what it learned from, how long, where, and how it scores.

A card is a JSON-able dict carried in the shipped file's metadata (`card`) and rendered as its README.md:
    name, licence          the model's name and the licence of the data it learned from
    data                   sha256 of the prepared file, of the source recordings (one digest over every file,
                           sorted by path) and of the labels file; the patient manifest (ids per split) and its
                           sha256; channels, rate and window
    training               optimizer steps, windows seen (steps x batch x accumulation x processes), training
                           wall time (summed over resumes), processes, hardware
    config                 the resolved config text of the run
    evaluation             eval.py's report.json on test patients and its markdown table (optional)
    audit                  a privacy audit report (optional)
Only facts read from the run's own files go in: nothing here is typed in by hand but the licence.

The README also states the sha256 of the final model.safetensors (a `| file sha256 | ... |` row; the file
cannot hold its own digest), and every user of a shipped model checks the file against it before use
(check_shipped: generate.py --model through tools.ship.shipped_model, the web app's catalog).
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Optional

from dataloader.config import Config
from dataloader.errors import UserError

from .model_file import cached_file_sha256, file_sha256

SHA_ROW = "file sha256"  # the README row holding the sha256 of the shipped model.safetensors
_SHA_ROW_RE = re.compile(r"^\|[ \t]*file sha256[ \t]*\|(.*)\|[ \t]*$", re.MULTILINE)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _latest_state(run: Path) -> dict[str, Any]:
    """trainer_state.json of the run's newest checkpoint (step, elapsed_s, world_size, ...)."""
    states = sorted((run / "checkpoints").glob("step-*/trainer_state.json"))
    if not states:
        raise UserError(str(run), "no checkpoints/step-*/trainer_state.json: not a finished training run folder")
    return json.loads(states[-1].read_text(encoding="utf-8"))


def training_facts(run: Path, cfg: Config, hardware: str) -> dict[str, Any]:
    """Steps, windows seen, wall time and hardware of the training run in folder `run`."""
    st = _latest_state(run)
    tc = cfg.train
    world = int(st.get("world_size", 1))
    step = int(st["step"])
    return {"steps": step, "windows_seen": step * tc.batch_size * tc.grad_accum * world,
            "wall_time_s": round(float(st.get("elapsed_s", 0.0)), 1), "processes": world,
            "batch_size": tc.batch_size, "grad_accum": tc.grad_accum, "hardware": hardware}


def tree_sha256(path: Path) -> tuple[str, int]:
    """One sha256 over every file under `path` (relative path and content sha256, sorted by path) and the
    number of files; a single file gives its own digest's digest, so moving the folder changes nothing."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for p in files:
        rel = p.relative_to(path).as_posix() if path.is_dir() else p.name
        h.update(f"{rel}\0{file_sha256(p)}\n".encode("utf-8"))
    return h.hexdigest(), len(files)


def data_facts(cfg: Config) -> dict[str, Any]:
    """sha256 of the prepared file, the sources and the labels file; the patient manifest; shapes."""
    from dataloader.prepared import PreparedFile

    d = cfg.data
    prepared = Path(d.prepared)
    pf = PreparedFile(prepared)
    out: dict[str, Any] = {"prepared_sha256": file_sha256(prepared), "manifest": pf.manifest,
                           "manifest_sha256": pf.manifest_sha256,
                           "patients": {k: len(v) for k, v in pf.manifest.items()},
                           "channels": pf.channels, "fs": pf.fs, "window_len": pf.window_len}
    for key in ("source", "labels"):
        p = Path(str(getattr(d, key, "") or ""))
        if str(p) and p.exists():
            digest, n = tree_sha256(p)
            out[f"{key}_sha256"], out[f"{key}_files"] = digest, n
    return out


def build_card(name: str, licence: str, run: Path, cfg: Config, hardware: str,
               evaluation: Optional[Path] = None, audit: Optional[Path] = None,
               notes: Optional[Path] = None) -> dict[str, Any]:
    """The card of the run in folder `run` (its resolved config `cfg`); `evaluation`: eval.py's output folder
    (report.json + report.md), `audit`: a privacy report JSON, `notes`: markdown on how the model was made
    (the commands, what its numbers mean), kept verbatim."""
    card: dict[str, Any] = {"name": name, "licence": licence, "data": data_facts(cfg),
                            "training": training_facts(run, cfg, hardware), "config": cfg.yaml()}
    if notes is not None:
        if not notes.is_file():
            raise UserError(f"--notes {notes}", "file not found")
        text = notes.read_text(encoding="utf-8").strip()
        if not text:
            raise UserError(f"--notes {notes}", "the file is empty")
        card["notes"] = text
    if evaluation is not None:
        rep = evaluation / "report.json"
        if not rep.is_file():
            raise UserError(f"--eval {evaluation}", "no report.json (the output folder of eval.py)")
        card["evaluation"] = {"report": json.loads(rep.read_text(encoding="utf-8")),
                              "table": (evaluation / "report.md").read_text(encoding="utf-8")
                              if (evaluation / "report.md").is_file() else ""}
    if audit is not None:
        if not audit.is_file():
            raise UserError(f"--audit {audit}", "file not found")
        card["audit"] = json.loads(audit.read_text(encoding="utf-8"))
    return card


def render_card(card: dict[str, Any], weights: str, sha256: str) -> str:
    """The card as the model's README.md (markdown); `sha256`: the digest of the final weights file."""
    d, t = card["data"], card["training"]
    chans = ", ".join(f"{c['name']} ({c.get('unit', '')})" for c in d["channels"])
    lines = [f"# {card['name']}", "",
             f"A physiodiff model: {chans} at {d['fs']:g} Hz, windows of {d['window_len']} samples "
             f"({d['window_len'] / d['fs']:g} s). Weights: `{weights}`.", "",
             "    .venv/bin/python generate.py --model " + card["name"] + " --samples 16 --out synthetic.h5", "",
             "## File", "", "| what | value |", "| --- | --- |", f"| file | {weights} |",
             f"| {SHA_ROW} | `{sha256}` |", "",
             "generate.py --model and the web app refuse the file when its sha256 is not this one.", "",
             "## Data", "", f"Licence of the data it learned from: {card['licence']}.", "",
             "| what | value |", "| --- | --- |",
             *[f"| {k} | `{d[k]}` |" for k in ("prepared_sha256", "source_sha256", "source_files", "labels_sha256",
                                                "manifest_sha256") if k in d],
             "| patients (train / val / test) | " + " / ".join(str(d["patients"].get(s, 0))
                                                            for s in ("train", "val", "test")) + " |", "",
             "The patient manifest (ids per split) is in the file's metadata (`card.data.manifest`).", "",
             "## Training", "", "| what | value |", "| --- | --- |",
             *[f"| {k.replace('_', ' ')} | {v} |" for k, v in t.items()], ""]
    if "notes" in card:  # the shipper's account: its headings go under this one
        notes = "\n".join("##" + ln if ln.startswith("#") else ln for ln in card["notes"].splitlines())
        lines += ["## How it was made", "", notes, ""]
    if "evaluation" in card:
        table = "\n".join("##" + ln if ln.startswith("#") else ln for ln in card["evaluation"]["table"].splitlines())
        lines += ["## Evaluation on test patients (eval.py)", "", table.strip(), ""]  # its headings under this one
    else:
        lines += ["## Evaluation", "", "Not evaluated yet.", ""]
    if "audit" in card:
        lines += ["## Privacy audit", "", "```json", json.dumps(card["audit"], indent=1)[:4000], "```", ""]
    lines += ["## Config", "", "```yaml", card["config"].strip(), "```", ""]
    return "\n".join(lines)


def card_sha256(readme: Path) -> str:
    """The sha256 of model.safetensors that the card `readme` states (its one `| file sha256 | ... |` row).
    UserError naming the README when it is missing or unreadable, or the row is missing, twice, or not
    64 hex digits."""
    try:
        text = readme.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(str(readme), "not found: a shipped model travels with its card (python -m tools.ship "
                                     "writes both)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(str(readme), f"cannot read the model card ({e})") from None
    rows = _SHA_ROW_RE.findall(text)
    if len(rows) != 1:
        raise UserError(str(readme), f"{'no' if not rows else len(rows)} '| {SHA_ROW} | ... |' row"
                                     f"{'s' if rows else ''} (the card names the shipped file's sha256 once)")
    value = rows[0].strip().strip("`").strip()
    if not _HEX64.match(value):
        raise UserError(str(readme), f"malformed '| {SHA_ROW} |' row: {value[:70]!r} is not 64 lower-case hex "
                                     "digits")
    return value


def check_shipped(model: Path, digest: Optional[str] = None) -> None:
    """A shipped model file must be the one its card (README.md beside it) describes: the card's sha256
    equals the file's (`digest` when the caller has it, else hashed here, once per unchanged file).
    UserError naming the README with both digests (12 hex digits each): damaged, edited or swapped after
    shipping, or a card without the row."""
    readme = model.with_name("README.md")
    actual = digest or cached_file_sha256(model)
    try:
        stated = card_sha256(readme)
    except UserError as e:
        raise UserError(e.where, f"{e.what}; {model.name} has sha256 {actual[:12]}...: ship it again "
                                 "(python -m tools.ship)") from None
    if stated != actual:
        raise UserError(str(readme), f"{model.name} has sha256 {actual[:12]}..., the card says {stated[:12]}...: "
                                     "the file changed after it was shipped (damaged or edited); ship it again "
                                     "(python -m tools.ship)")
