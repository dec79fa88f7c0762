"""The root config: its sections, loading, resolution and the text saved with every output."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from ..errors import UserError
from .data_schema import DataConfig
from .typed import from_dict, to_dict
from .yaml_io import apply_override, load_with_includes, parse_yaml

# Further sections (model, train, sample, eval, privacy, ...) are registered here by their schema
# modules in this package, so one validation sees every key. See `register_section`.
_SECTIONS: dict[str, tuple[type, bool]] = {"data": (DataConfig, True)}


def register_section(name: str, cls: type, required: bool = False) -> None:
    """Declare a top-level config section and its dataclass."""
    _SECTIONS[name] = (cls, required)


def _load_optional_sections() -> None:
    # schema modules of later sections live beside this file; importing them registers them
    import importlib
    import pkgutil

    pkg = Path(__file__).parent
    for m in pkgutil.iter_modules([str(pkg)]):
        if m.name.endswith("_schema"):
            importlib.import_module(f"{__package__}.{m.name}")


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
    _load_optional_sections()
    unknown = [k for k in data if k not in _SECTIONS]
    if unknown:
        k = unknown[0]
        where = getattr(data, "where", {}).get(str(k), src)
        raise UserError(f"{where}: {k}", f"unknown section {k!r}; valid sections: {', '.join(sorted(_SECTIONS))}")
    out: dict[str, Any] = {}
    for name, (cls, required) in _SECTIONS.items():
        if name not in data:
            if required:
                raise UserError(src, f"required section {name!r} is missing")
            continue
        out[name] = from_dict(cls, data[name], name, src)
    return out


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Load, merge includes, apply overrides, validate. Bad input raises `UserError`."""
    data = load_with_includes(path)
    for o in overrides:
        apply_override(data, o)
    return Config(sections=_validate(data, str(path)), path=str(path), overrides=list(overrides))


def config_from_text(text: str, src: str = "<stored config>") -> Config:
    """Rebuild a Config from resolved YAML text (as stored in model and data files)."""
    data = parse_yaml(text, src)
    if not isinstance(data, dict):
        raise UserError(src, "stored config is not a mapping")
    return Config(sections=_validate(data, src), path=src)
