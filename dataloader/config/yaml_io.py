"""YAML reading for configs: safe loading, duplicate keys rejected, line numbers kept, includes, overrides.

A config file may start with `include: <file>` (or a list of files), paths relative to the including
file. Included files are merged first, in order; the including file's keys win (deep merge of mappings;
lists and scalars are replaced). This lets one data section serve several experiments.

`key.sub=value` overrides from the command line are applied after all includes; the value is parsed
as YAML (`train.max_steps=100`, `data.channels.0.range=[50,210]`, `data.labels=null`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError


class LineDict(dict):
    """A dict that remembers `file:line` for each key, for error messages that point at the YAML."""

    where: dict[str, str]

    def __init__(self, *a: Any, **k: Any) -> None:
        super().__init__(*a, **k)
        self.where = {}


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and explicit tags, and records where each key stands."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        # A config holds plain values only: an explicit tag (`!!python/object`, `!!binary`, `!!set`, `!foo`,
        # even `!!str`) either cannot be built safely or builds a type no schema field takes, and PyYAML's
        # own error for it is several lines long. Refused here, where the event still knows its line.
        ev = self.peek_event()
        tag = getattr(ev, "tag", None)
        if tag is not None:
            name = getattr(self, "_file", "<config>")
            raise UserError(f"{name}:{ev.start_mark.line + 1}",
                            f"explicit YAML tag {tag!r} is not allowed in a config (write a plain value)")
        return super().compose_node(parent, index)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    name = getattr(loader, "_file", "<config>")
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise UserError(f"{name}:{key_node.start_mark.line + 1}", f"unsupported key {key!r}")
        if isinstance(key, str) and not key.isprintable():
            # keys end up in `where` of error messages unquoted: a newline there would break the one-line rule
            raise UserError(f"{name}:{key_node.start_mark.line + 1}", f"key {key!r} holds control characters")
        if key in out:
            raise UserError(f"{name}:{key_node.start_mark.line + 1}",
                            f"duplicate key {key!r} (first at line {out.where[str(key)].rsplit(':', 1)[-1]})")
        out[key] = loader.construct_object(value_node, deep=True)
        out.where[str(key)] = f"{name}:{key_node.start_mark.line + 1}"
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# PyYAML resolves YAML 1.1, where a float needs a dot: `lr: 1e-3` (or `train.lr=1e-3` on the command line)
# would arrive as the string '1e-3' and be refused by the schema. YAML 1.2 reads it as a number, as users expect.
_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                              list("-+0123456789"))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def parse_yaml(text: str, name: str) -> Any:
    """Parse YAML `text` safely (`name`: the file, for messages). Duplicate keys, explicit tags, syntax
    errors and nesting too deep for the parser all become a one-line `UserError` naming `name:line`."""
    loader = None
    try:
        loader = _Loader(text)  # the reader checks for unprintable characters already here
        loader._file = name  # type: ignore[attr-defined]
        return loader.get_single_data()
    except yaml.reader.ReaderError as e:
        line = text[:e.position].count("\n") + 1
        raise UserError(f"{name}:{line}", f"invalid YAML: character U+{e.character:04X} is not allowed") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise UserError(where, f"invalid YAML: {_one_line(getattr(e, 'problem', None) or e)}") from None
    except RecursionError:
        raise UserError(name, "invalid YAML: nested too deeply") from None
    except (ValueError, OverflowError) as e:  # a constructor's own failure: a 5000-digit int, 2001-02-30
        raise UserError(name, f"invalid YAML value: {_one_line(e)[:200]}") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml(path: str | Path) -> Any:
    """Load one YAML file safely; unreadable or non-UTF-8 files and bad YAML become `UserError`."""
    p = Path(path)
    if not p.is_file():
        raise UserError(str(path), "config file not found")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise UserError(str(path), f"cannot read config file ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8-sig")  # -sig: a byte-order mark from an editor is not part of the first key
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}", f"config file is not UTF-8 text (byte 0x{raw[e.start]:02x} "
                                          f"at offset {e.start})") from None
    return parse_yaml(text, str(path))


def deep_merge(base: Any, top: Any) -> Any:
    """Merge `top` over `base`: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(top, dict):
        out = LineDict(base)
        out.where = dict(getattr(base, "where", {}))
        for k, v in top.items():
            out[k] = deep_merge(base[k], v) if k in base else v
            if k in getattr(top, "where", {}):
                out.where[k] = top.where[k]
        return out
    return top


def load_with_includes(path: str | Path, _stack: tuple[str, ...] = ()) -> LineDict:
    """Load a config file, resolving its `include:` list recursively (cycles are errors)."""
    p = Path(path)
    key = str(p.resolve())
    if key in _stack:
        raise UserError(str(path), "include cycle: " + " -> ".join(_stack + (key,)))
    data = load_yaml(p)
    if data is None:
        data = LineDict()
    if not isinstance(data, dict):
        raise UserError(str(path), f"a config must be a mapping of sections (got {type(data).__name__})")
    inc = data.pop("include", None)
    if inc is None:
        return data
    incs = [inc] if isinstance(inc, str) else inc
    if not isinstance(incs, list) or not all(isinstance(i, str) for i in incs):
        raise UserError(data.where.get("include", str(path)), "include must be a file name or a list of them")
    merged: Any = LineDict()
    for i in incs:
        merged = deep_merge(merged, load_with_includes(p.parent / i, _stack + (key,)))
    return deep_merge(merged, data)


def _is_index(part: str) -> bool:
    # ASCII digits only: str.isdigit() is also true for "²", which int() refuses
    return part.isascii() and part.isdigit()


def apply_override(cfg: dict, text: str) -> None:
    """Apply one `a.b.c=value` override in place; list items are addressed by index (`channels.0`)."""
    if "=" not in text:
        raise UserError("command line", f"override {text!r} is not key=value")
    dotted, raw = text.split("=", 1)
    parts = dotted.strip().split(".")
    if not all(parts):
        raise UserError("command line", f"override {text!r} has an empty key")
    if not dotted.isprintable():
        raise UserError("command line", f"override {text!r}: the key holds control characters")
    value = parse_yaml(raw, f"command line ({dotted.strip()})") if raw.strip() != "" else ""
    node: Any = cfg
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not _is_index(part) or int(part) >= len(node):
                raise UserError("command line", f"override {dotted}: {part!r} is not an index of the list "
                                                f"at {'.'.join(parts[:i]) or '<root>'} (0..{len(node) - 1})")
            node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node or node[part] is None:
                node[part] = LineDict()
            node = node[part]
        else:
            raise UserError("command line", f"override {dotted}: {'.'.join(parts[:i])} is not a section")
    last = parts[-1]
    if isinstance(node, list):
        if not _is_index(last) or int(last) >= len(node):
            raise UserError("command line", f"override {dotted}: {last!r} is not an index (0..{len(node) - 1})")
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
        if isinstance(node, LineDict):
            node.where[last] = f"command line ({dotted})"
    else:
        raise UserError("command line", f"override {dotted}: parent is not a section")
