"""Named training profiles: the paper's scale for a GPU, and a CPU-sized one.

    crl train --profile paper ...   # the authors' settings: 300k steps, batch 2048 (CRL), 1024-wide MLPs
    crl train --profile cpu ...     # batch 128, 256-wide MLPs, half-width encoder, Xavier policy init, fp32, 4000 steps

A profile is a step count plus agent-config overrides applied before ``--config`` and
``--set`` (which win). ``paper`` changes nothing: the agents' defaults ARE the paper's.
``cpu`` is NOT the paper's method at scale (the large batch and wide MLPs are two of its
design decisions); it exists so that a run finishes on a laptop in minutes. Measured step
times are in docs/benchmarks.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Profile:
    name: str
    steps: int
    overrides: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""

    @property
    def batch_size(self) -> int | None:
        """The batch size the profile sets (None: the agent's default)."""
        sizes = [int(o.partition("=")[2]) for o in self.overrides if o.startswith("batch_size=")]
        return sizes[-1] if sizes else None


PROFILES: dict[str, Profile] = {
    "paper": Profile("paper", 300_000, (),
                     "the paper's settings (batch 2048 for Stable CRL, 1024-wide 4-layer MLPs, 300k steps): "
                     "sized for a GPU"),
    # policy_init=xavier: the authors' uniform +-1e-3 policy init leaves the policy at the mean
    # action for thousands of steps at this size (docs/results.md, the point-mass learning test)
    "cpu": Profile("cpu", 4_000, ("batch_size=128", "hidden_width=256", "encoder_channels=[16,32,32]",
                                  "policy_init=xavier"),
                   "batch 128, 256-wide MLPs, half-width encoder, Xavier policy init, 4000 steps, fp32: "
                   "minutes on a laptop CPU (not the paper's scale)"),
}
DEFAULT_PROFILE = "paper"

#: agent-config keys that size a run; setting any of them is an explicit choice of size
SIZE_KEYS = ("batch_size", "hidden_width", "hidden_depth", "encoder_channels")


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}")
    return PROFILES[name]


def sets_size(overrides: list[str] | tuple[str, ...] | dict) -> bool:
    """True when `overrides` ("key=value" strings or a dotted-key mapping) set a size key."""
    keys = overrides.keys() if isinstance(overrides, dict) else [o.partition("=")[0].strip() for o in overrides]
    return any(k in SIZE_KEYS for k in keys)
