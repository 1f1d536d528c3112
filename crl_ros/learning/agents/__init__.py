"""Agent registry: `make_agent(name, config, image_shape, action_dim, device)`; a saved
config back to its dataclass with `config_from_checkpoint`."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch

from crl_ros.learning.agents.base import Agent
from crl_ros.learning.agents.common import LEGACY_SPLIT_FROM, LEGACY_VALUES
from crl_ros.learning.agents.gcbc import GCBCAgent
from crl_ros.learning.agents.gciql import GCIQLAgent
from crl_ros.learning.agents.stable_crl import StableCRLAgent
from crl_ros.learning.config import config_from_dict

AGENTS: dict[str, type[Agent]] = {
    "stable_crl": StableCRLAgent,
    "gcbc": GCBCAgent,
    "gciql": GCIQLAgent,
}


def _agent_class(name: str) -> type[Agent]:
    if name not in AGENTS:
        raise ValueError(f"unknown algorithm {name!r}; choose from {', '.join(AGENTS)}")
    return AGENTS[name]


def config_class(name: str) -> type:
    return _agent_class(name).config_class


def default_config(name: str) -> Any:
    return config_class(name)()


def config_from_checkpoint(name: str, data: Mapping[str, Any]) -> Any:
    """The config dataclass of `name` from a checkpoint's (or run's) saved config dict.

    Keys the dict lacks keep their defaults, except the switches in `LEGACY_VALUES`: a config
    saved before a switch existed gets the value crl_ros used then (for a switch split off an
    older one, `LEGACY_SPLIT_FROM`, the older one's saved value), so the checkpoint's weights
    fit the network rebuilt from it and it acts as it did. Unknown keys raise ValueError.
    """
    cls = config_class(name)
    names = {f.name for f in dataclasses.fields(cls)}
    if not isinstance(data, Mapping):
        return config_from_dict(cls, data)  # raises the usual message
    legacy = {}
    for key, value in LEGACY_VALUES.items():
        if key in names and key not in data:
            older = LEGACY_SPLIT_FROM.get(key)
            legacy[key] = data[older] if older in data else value
    return config_from_dict(cls, {**data, **legacy})


def make_agent(name: str, config: Any | Mapping[str, Any] | None, image_shape: tuple[int, int, int],
               action_dim: int, device: torch.device | str) -> Agent:
    """Build agent `name`; `config` is its config dataclass, a dict of fields, or None for defaults."""
    cls = _agent_class(name)
    if config is None:
        config = cls.config_class()
    elif isinstance(config, Mapping):
        config = config_from_dict(cls.config_class, config)
    elif not (dataclasses.is_dataclass(config) and isinstance(config, cls.config_class)):
        raise ValueError(f"{name} needs a {cls.config_class.__name__} or a dict, got {type(config).__name__}")
    return cls(config, image_shape, action_dim, device)
