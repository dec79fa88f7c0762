"""Typed validation of plain YAML data into frozen-ish dataclasses.

A section is a dataclass; each field's type hint is checked (int, float, str, bool, Literal, Optional,
Union, list[...], tuple[...], dict[str, ...], nested dataclasses). Field metadata adds limits:
`field(metadata=limits(gt=0))`, `limits(ge=0, le=1)`, `limits(min_len=1)`, and names that select code:
`limits(one_of="diffusion.samplers:SAMPLERS", what="sampler")` checks a string (or each string of a list)
against the keys of that registry, named as "module:attribute" and imported only when a value is checked,
so the list cannot drift from the code and `dataloader` needs no import of the packages above it (the
style of `training.MODEL_KINDS`). Unknown keys are errors that list the valid ones. A dataclass may define `check(self, where)` for rules across fields; it is called
after its fields are converted.
"""
from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from typing import Any, Literal, Union

from ..errors import UserError


def limits(**kw: Any) -> dict[str, Any]:
    """Field metadata: numeric or length limits (gt, ge, lt, le, min_len) and registry names (one_of, what)."""
    return kw


def registry_names(ref: str) -> list[str]:
    """The names of the registry `ref` ("module:attribute", a dict or a list), in the registry's order."""
    module, attr = ref.split(":")
    return list(getattr(importlib.import_module(module), attr))


def _check_name(value: Any, meta: dict[str, Any], where: str) -> None:
    names = registry_names(meta["one_of"])
    for v in value if isinstance(value, (list, tuple)) else [value]:
        if v not in names:
            raise UserError(where, f"unknown {meta.get('what', 'name')} {v!r}; valid: {', '.join(names)}")


def _where(parent: Any, key: str | int, path: str, src: str) -> str:
    loc = getattr(parent, "where", {}).get(str(key)) if isinstance(parent, dict) else None
    return f"{loc or src}: {path}"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"mapping to {_type_name(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "mapping (section)"
    return getattr(tp, "__name__", str(tp))


def convert(value: Any, tp: Any, path: str, where: str, hints_cache: dict | None = None) -> Any:
    """Convert `value` to type `tp` or raise `UserError(where, ...)` naming `path`."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        errors = []
        args = typing.get_args(tp)
        # try None first so "null" never becomes a string
        for a in sorted(args, key=lambda a: a is not type(None)):
            try:
                return convert(value, a, path, where)
            except UserError as e:
                errors.append(e)
        raise UserError(where, f"expected {_type_name(tp)} (got {value!r})")
    if tp is type(None):
        if value is None:
            return None
        raise UserError(where, f"expected null (got {value!r})")
    if origin is Literal:
        if value in typing.get_args(tp) and type(value) in {type(a) for a in typing.get_args(tp)}:
            return value
        raise UserError(where, f"expected one of {', '.join(repr(a) for a in typing.get_args(tp))} (got {value!r})")
    if tp in (bool, int, float, str):
        return _scalar(value, tp, where)
    if origin in (list, tuple):
        return _sequence(value, tp, origin, path, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(where, f"expected a mapping (got {value!r})")
        kt, vt = typing.get_args(tp) or (Any, Any)
        return {convert(k, kt, f"{path}.{k}", where): convert(v, vt, f"{path}.{k}", where)
                for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path, where.split(": ")[0])
    raise TypeError(f"unsupported type in schema: {tp!r}")


def _scalar(value: Any, tp: type, where: str) -> Any:
    """`value` as a bool, int, float (finite) or str; never converted from another of these (YAML's 1 is no
    true, "1" no number)."""
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise UserError(where, f"expected true or false (got {value!r})")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UserError(where, f"expected an integer (got {value!r})")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value != value or value in (float("inf"), float("-inf")):
                raise UserError(where, f"expected a finite number (got {value!r})")
            return float(value)
        raise UserError(where, f"expected a number (got {value!r})")
    if tp is str:
        if isinstance(value, str):
            return value
        raise UserError(where, f"expected a string (got {value!r})")
    raise TypeError(f"not a scalar type: {tp!r}")


def _sequence(value: Any, tp: Any, origin: Any, path: str, where: str) -> Any:
    """`value` as a list or tuple of `tp`'s items (a fixed-length tuple checks its length)."""
    if not isinstance(value, (list, tuple)):
        raise UserError(where, f"expected {_type_name(tp)} (got {value!r})")
    args = typing.get_args(tp)
    if origin is tuple and len(args) >= 1 and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise UserError(where, f"expected a list of {len(args)} items (got {len(value)})")
        return tuple(convert(v, a, f"{path}.{i}", where) for i, (v, a) in enumerate(zip(value, args)))
    item = args[0] if args else Any
    out = [convert(v, item, f"{path}.{i}", _where(value, i, f"{path}.{i}", where.split(': ')[0]))
           for i, v in enumerate(value)]
    return tuple(out) if origin is tuple else out


def _check_limits(value: Any, meta: dict[str, Any], where: str) -> None:
    if value is None:
        return
    for key, op, text in (("gt", lambda a, b: a > b, ">"), ("ge", lambda a, b: a >= b, ">="),
                          ("lt", lambda a, b: a < b, "<"), ("le", lambda a, b: a <= b, "<=")):
        if key in meta and isinstance(value, (int, float)) and not op(value, meta[key]):
            raise UserError(where, f"must be {text} {meta[key]} (got {value})")
    if "min_len" in meta and hasattr(value, "__len__") and len(value) < meta["min_len"]:
        raise UserError(where, f"needs at least {meta['min_len']} item(s) (got {len(value)})")
    if "one_of" in meta:
        _check_name(value, meta, where)


def from_dict(cls: type, data: Any, path: str, src: str) -> Any:
    """Build dataclass `cls` from mapping `data`; `path` is the dotted key path, `src` the file."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{src}: {path or '<root>'}", f"expected a mapping of keys (got {data!r})")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        k = unknown[0]
        full = f"{path}.{k}" if path else str(k)
        raise UserError(_where(data, k, full, src),
                        f"unknown key {k!r}; valid keys: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, f in fields.items():
        full = f"{path}.{name}" if path else name
        where = _where(data, name, full, src)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise UserError(f"{src}: {full}", f"required key is missing ({_type_name(hints[name])})")
            continue
        value = convert(data[name], hints[name], full, where)
        _check_limits(value, dict(f.metadata), where)
        kwargs[name] = value
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        check(f"{src}: {path}" if path else src)
    return obj


def to_dict(obj: Any) -> Any:
    """A dataclass tree back to plain YAML-able data (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
