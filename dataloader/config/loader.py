"""The root config: its sections, loading, resolution and the text saved with every output."""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from ..errors import UserError
from .data_schema import DataConfig
from .typed import from_dict, to_dict
from .yaml_io import apply_override, load_with_includes, parse_yaml

# Every top-level section: name -> (its dataclass, or "module:Class" beside the code it configures; required).
# The later sections are named, not imported: their packages (diffusion/, training/, ...) import dataloader/,
# so importing them here would be a circle (the style of training.MODEL_KINDS). The order is the order of the
# resolved config text saved with every output.
SECTIONS: dict[str, tuple[type | str, bool]] = {
    "data": (DataConfig, True),
    "model": ("diffusion.config:ModelConfig", False),
    "sample": ("diffusion.config:SampleConfig", False),
    "train": ("training.config:TrainConfig", False),
    "sr": ("diffusion.config:SRConfig", False),
    "baseline": ("baselines.config:BaselineConfig", False),
    "eval": ("evaluation.config:EvalConfig", False),
    "privacy": ("evaluation.privacy.config:PrivacyConfig", False),
}


def section_class(name: str) -> type:
    """The dataclass of top-level section `name` (imported on first use)."""
    cls = SECTIONS[name][0]
    if isinstance(cls, str):
        module, attr = cls.split(":")
        cls = getattr(importlib.import_module(module), attr)
    return cls


@dataclass
class Config:
    """The resolved, validated config. Sections are attributes (`cfg.data`, `cfg.model`, ...)."""

    sections: dict[str, Any]
    path: str = ""
    overrides: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        secs = self.__dict__.get("sections", {})
        if name in secs:
            return secs[name]
        raise AttributeError(name)

    def get(self, name: str, default: Any = None) -> Any:
        return self.sections.get(name, default)

    @property
    def raw(self) -> dict[str, Any]:
        """Plain dict of every section with every default filled in."""
        return {k: to_dict(v) for k, v in self.sections.items() if v is not None}

    def yaml(self) -> str:
        """The resolved config as YAML text (saved beside and inside every output)."""
        head = f"# resolved from {self.path}" + (f" with {' '.join(self.overrides)}" if self.overrides else "")
        return head + "\n" + yaml.safe_dump(self.raw, sort_keys=False)

    def replace(self, **sections: Any) -> "Config":
        """A copy with some sections replaced (dataclasses.replace on the sections' objects)."""
        new = dict(self.sections)
        new.update(sections)
        return dataclasses.replace(self, sections=new)


def _validate(data: dict[str, Any], src: str) -> dict[str, Any]:
    unknown = [k for k in data if k not in SECTIONS]
    if unknown:
        k = unknown[0]
        where = getattr(data, "where", {}).get(str(k), src)
        raise UserError(f"{where}: {k}", f"unknown section {k!r}; valid sections: {', '.join(sorted(SECTIONS))}")
    out: dict[str, Any] = {}
    for name, (_, required) in SECTIONS.items():
        if name not in data:
            if required:
                raise UserError(src, f"required section {name!r} is missing")
            continue
        out[name] = from_dict(section_class(name), data[name], name, src)
    return out


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Load, merge includes, apply overrides, validate. Bad input raises `UserError`."""
    data = load_with_includes(path)
    for o in overrides:
        apply_override(data, o)
    return Config(sections=_validate(data, str(path)), path=str(path), overrides=list(overrides))


def config_from_text(text: str, src: str = "<stored config>", overrides: Sequence[str] = ()) -> Config:
    """Rebuild a Config from resolved YAML text (as stored in model and data files), `key=value` overrides
    applied as on the command line."""
    data = parse_yaml(text, src)
    if not isinstance(data, dict):
        raise UserError(src, "stored config is not a mapping")
    for o in overrides:
        apply_override(data, o)
    return Config(sections=_validate(data, src), path=src, overrides=list(overrides))
