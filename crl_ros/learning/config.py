"""Dataclass configs: to/from plain dicts, ``key=value`` overrides and YAML override files.

Every agent config is a (possibly nested) dataclass. Overrides are type-checked against
the field they set, so a typo or a wrong type fails at start-up with a message naming the
key, instead of silently training something else.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, Union

import yaml


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain dict (tuples become lists) that YAML / JSON / torch.save(weights_only) accept."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value
    return plain(cfg)


def config_from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """Build dataclass `cls` from a dict; missing keys keep their defaults, unknown keys raise."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ValueError(f"{cls.__name__} has no field {key!r}; valid fields: {', '.join(names)}")
        kwargs[key] = _coerce(value, hints[key], key)
    return cls(**kwargs)


def apply_overrides(cfg: Any, overrides: Sequence[str] | Mapping[str, Any]) -> Any:
    """Return a copy of `cfg` with overrides applied.

    `overrides` is either a list of ``"key=value"`` / ``"nested.key=value"`` strings (values
    parsed with ``yaml.safe_load``) or a mapping of dotted keys to already parsed values
    (what `load_yaml_overrides` returns).
    """
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = []
        for text in overrides:
            key, sep, raw = text.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"override {text!r} is not of the form key=value")
            items.append((key.strip(), yaml.safe_load(raw) if raw.strip() else None))
    return _apply_items(cfg, [(key.split("."), value, key) for key, value in items])


def load_yaml_overrides(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping (nested or with dotted keys) into flat dotted-key overrides."""
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the config file must hold a mapping of settings, got {type(data).__name__}")
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(dotted + ".", value)
            else:
                flat[dotted] = value
    walk("", data)
    return flat


def _apply_items(cfg: Any, items: list[tuple[list[str], Any, str]]) -> Any:
    """Apply (path, value, full key) items with ONE `dataclasses.replace` per level, so
    `__post_init__` checks see all overrides together (e.g. encoder lists of a new length)."""
    names = [f.name for f in dataclasses.fields(cfg)]
    hints = typing.get_type_hints(type(cfg))
    changes: dict[str, Any] = {}
    nested: dict[str, list[tuple[list[str], Any, str]]] = {}
    for path, value, full_key in items:
        head = path[0]
        if head not in names:
            raise ValueError(f"unknown config key {full_key!r}; valid keys: {', '.join(names)}")
        child = getattr(cfg, head)
        if len(path) > 1 or (isinstance(value, dict) and dataclasses.is_dataclass(child)):
            if not dataclasses.is_dataclass(child):
                raise ValueError(f"config key {full_key!r}: {head!r} is not a nested section")
            sub_items = [(path[1:], value, full_key)] if len(path) > 1 else [
                ([k], v, f"{full_key}.{k}") for k, v in value.items()]
            nested.setdefault(head, []).extend(sub_items)
        else:
            changes[head] = _coerce(value, hints[head], full_key)
    for head, sub_items in nested.items():
        changes[head] = _apply_items(getattr(cfg, head), sub_items)
    return dataclasses.replace(cfg, **changes)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against the annotation `hint`; convert the lossless cases (int -> float, list -> tuple)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors))
    if origin is Literal:
        if value not in args:
            raise ValueError(f"config key {key!r}: {value!r} is not one of {list(args)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key {key!r}: expected a list, got {value!r}")
        item_hint = args[0] if args else Any
        items = [_coerce(v, item_hint, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(hint):
        if dataclasses.is_dataclass(value):
            return value
        return config_from_dict(hint, value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"config key {key!r}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"config key {key!r}: expected an integer, got {value!r}")
        return value
    if hint is float:
        # YAML 1.1 reads "3e-4" as a string; accept it as the number the user meant.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"config key {key!r}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"config key {key!r}: expected a string, got {value!r}")
        return value
    raise ValueError(f"config key {key!r}: unsupported field type {hint!r}")
