"""Safety logic for commanding the arm: pure numpy, no ROS, so it is unit-tested directly.

arm_node runs every action through `ActionGuard.check` and every joint target through
`JointGuard.check` before anything is sent to a driver; `Watchdog` decides when to hold
because actions stopped arriving; `ArmState` is the enable / stop state machine. Any
failed check raises `UnsafeCommand` with a message naming the problem, and the arm is
not moved.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


class UnsafeCommand(ValueError):
    """A command that must not reach the robot; the message says why."""


@dataclass
class ActionGuard:
    """Validates one end-effector delta action against its shape and per-step bounds.

    ``out_of_bounds``: "reject" (default) refuses an action outside [low, high];
    "clip" clips it into the bounds. Non-finite values are always rejected.
    """
    low: np.ndarray
    high: np.ndarray
    names: Sequence[str] = ()
    out_of_bounds: str = "reject"
    tolerance: float = 1e-6

    def __post_init__(self) -> None:
        self.low = np.asarray(self.low, dtype=np.float64).reshape(-1)
        self.high = np.asarray(self.high, dtype=np.float64).reshape(-1)
        if self.low.shape != self.high.shape or not np.all(self.low <= self.high):
            raise ValueError(f"bad action bounds low={self.low} high={self.high}")
        if self.out_of_bounds not in ("reject", "clip"):
            raise ValueError(f"out_of_bounds must be 'reject' or 'clip', got {self.out_of_bounds!r}")
        if not self.names:
            self.names = [f"a{i}" for i in range(len(self.low))]

    @property
    def dim(self) -> int:
        return len(self.low)

    def check(self, action: Sequence[float] | np.ndarray) -> np.ndarray:
        """Return the action as float64 [dim] (clipped if so configured) or raise UnsafeCommand."""
        a = np.asarray(action, dtype=np.float64)
        if a.ndim != 1 or a.shape[0] != self.dim:
            raise UnsafeCommand(f"action must have {self.dim} values {list(self.names)}, got shape {a.shape}")
        bad = ~np.isfinite(a)
        if bad.any():
            names = [self.names[i] for i in np.nonzero(bad)[0]]
            raise UnsafeCommand(f"action has NaN/inf in {names}: {a.tolist()}")
        outside = (a < self.low - self.tolerance) | (a > self.high + self.tolerance)
        if outside.any():
            if self.out_of_bounds == "reject":
                i = int(np.nonzero(outside)[0][0])
                raise UnsafeCommand(f"action {self.names[i]}={a[i]:.4g} outside per-step bounds "
                                    f"[{self.low[i]:.4g}, {self.high[i]:.4g}]")
        return np.clip(a, self.low, self.high)


@dataclass
class JointGuard:
    """Validates joint position targets: finite, inside joint limits, and a bounded step.

    ``limits`` is [n, 2] (low, high) radians; ``max_step`` is the largest change per
    command for any joint (rad), from the velocity limit times the control period.
    Targets slightly outside limits (by less than ``clamp_margin``) are clamped, which
    absorbs IK round-off; anything further out is rejected.
    """
    limits: np.ndarray
    max_step: float
    clamp_margin: float = 0.02

    def __post_init__(self) -> None:
        self.limits = np.asarray(self.limits, dtype=np.float64)
        if self.limits.ndim != 2 or self.limits.shape[1] != 2:
            raise ValueError(f"joint limits must be [n, 2], got {self.limits.shape}")

    def check(self, target: Sequence[float], current: Sequence[float] | None = None) -> np.ndarray:
        q = np.asarray(target, dtype=np.float64)
        n = len(self.limits)
        if q.shape != (n,):
            raise UnsafeCommand(f"joint target must have {n} values, got shape {q.shape}")
        if not np.isfinite(q).all():
            raise UnsafeCommand(f"joint target has NaN/inf: {q.tolist()}")
        low, high = self.limits[:, 0], self.limits[:, 1]
        far = (q < low - self.clamp_margin) | (q > high + self.clamp_margin)
        if far.any():
            i = int(np.nonzero(far)[0][0])
            raise UnsafeCommand(f"joint {i} target {q[i]:.3f} rad outside limits [{low[i]:.3f}, {high[i]:.3f}]")
        q = np.clip(q, low, high)
        if current is not None:
            cur = np.asarray(current, dtype=np.float64)
            if cur.shape != (n,) or not np.isfinite(cur).all():
                raise UnsafeCommand(f"current joint state is unusable: {cur.tolist()}")
            step = np.abs(q - cur)
            if step.max() > self.max_step:
                i = int(np.argmax(step))
                raise UnsafeCommand(f"joint {i} would move {step[i]:.3f} rad in one step "
                                    f"(max {self.max_step:.3f})")
        return q


@dataclass
class Watchdog:
    """Expires when no command was fed for ``timeout_s`` seconds (times from any monotonic clock)."""
    timeout_s: float
    last_feed: float | None = None

    def feed(self, now: float) -> None:
        self.last_feed = now

    def reset(self) -> None:
        self.last_feed = None

    def expired(self, now: float) -> bool:
        """True when a command was fed once and has since gone stale; never fed -> not expired."""
        return self.last_feed is not None and now - self.last_feed > self.timeout_s

    def age(self, now: float) -> float | None:
        return None if self.last_feed is None else now - self.last_feed


@dataclass
class ArmState:
    """enable / disable / stop. The arm moves only while enabled; `stop` disables and holds.

    ``holding`` is True after a stop, a watchdog expiry or a rejected command, and clears
    with the next accepted command.
    """
    enabled: bool = False
    holding: bool = True
    reason: str = "starting disabled"
    accepted: int = 0
    rejected: int = 0
    history: list[str] = field(default_factory=list)

    def _note(self, reason: str) -> None:
        self.reason = reason
        self.history = (self.history + [reason])[-20:]

    def enable(self) -> None:
        self.enabled = True
        self._note("enabled")

    def disable(self, reason: str = "disabled") -> None:
        self.enabled = False
        self.holding = True
        self._note(reason)

    def stop(self) -> None:
        self.disable("stopped")

    def hold(self, reason: str) -> None:
        self.holding = True
        self._note(reason)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        self.hold(f"rejected: {reason}")

    def accept(self) -> None:
        self.accepted += 1
        self.holding = False
        self.reason = "moving"

    def may_move(self) -> tuple[bool, str]:
        if not self.enabled:
            return False, "arm is disabled (call the enable service)"
        return True, ""

    def as_dict(self) -> dict:
        return {"enabled": self.enabled, "holding": self.holding, "reason": self.reason,
                "accepted": self.accepted, "rejected": self.rejected}


def gripper_to_finger(gripper01: float, finger_low: float = 0.015, finger_high: float = 0.037) -> float:
    """Gripper command in [0, 1] (0 closed, 1 open) -> finger position in metres."""
    g = float(np.clip(gripper01, 0.0, 1.0))
    return finger_low + g * (finger_high - finger_low)


def finger_to_gripper(finger_m: float, finger_low: float = 0.015, finger_high: float = 0.037) -> float:
    return float(np.clip((finger_m - finger_low) / (finger_high - finger_low), 0.0, 1.0))
