"""Agent registry: `make_agent(name, config, image_shape, action_dim, device)`."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch

from crl_ros.learning.agents.base import Agent
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
