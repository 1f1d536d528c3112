"""Teleoperation inputs -> crl_ros actions, without ROS: gamepad layouts, the keyboard's
keys, dead zone, speed levels and a terminal key reader.

Both devices produce a *motion*: 6 numbers in [-1, 1] for ``dx, dy, dz, droll, dpitch,
dyaw`` (fractions of the per-step bounds of `crl_ros.robot.actions`); `teleop_action`
scales a motion by the speed and appends the gripper's absolute opening. The operator
stands behind the arm, looking along +x: forward is +x, left is +y, up is +z, roll is
about +x (positive: clockwise as the operator sees it), pitch about +y (positive: the tip
goes down), yaw about +z (positive: the tip turns left).

Gamepad indices are those of the ROS ``joy`` package's joy_node with the kernel's own
driver (evdev): sticks read +1 left and up, the D-pad is the last two axes (+1 left, +1
up). Other drivers order differently; check with ``ros2 topic echo joy`` and override.
"""
from __future__ import annotations

import os
import select
import sys
from dataclasses import dataclass, field, replace

import numpy as np

from crl_ros.robot.actions import ACTION_DIM, ACTION_HIGH, ACTION_LOW, ACTION_NAMES

MOTIONS = tuple(ACTION_NAMES[:6])     # dx dy dz droll dpitch dyaw
BUTTONS = ("deadman", "gripper_close", "gripper_open", "speed_up", "speed_down",
           "start_episode", "end_episode")
CLOSED, OPEN = 0.0, 1.0


@dataclass(frozen=True)
class Gamepad:
    """Which joy axis drives each motion (index, sign) and which button does what."""
    axes: dict[str, tuple[int, float]]
    buttons: dict[str, int]
    description: str = ""

    def with_overrides(self, axes: dict[str, int] | None = None, scales: dict[str, float] | None = None,
                       buttons: dict[str, int] | None = None) -> "Gamepad":
        """A copy with axis indices, axis scales (multiplying the sign) and button indices
        replaced where given; an index < 0 keeps the layout's own."""
        new_axes = dict(self.axes)
        for name, index in (axes or {}).items():
            if index >= 0:
                new_axes[name] = (int(index), new_axes[name][1])
        for name, scale in (scales or {}).items():
            new_axes[name] = (new_axes[name][0], new_axes[name][1] * float(scale))
        new_buttons = {name: (int(index) if index >= 0 else self.buttons[name])
                       for name, index in {**self.buttons, **(buttons or {})}.items()}
        return replace(self, axes=new_axes, buttons=new_buttons)


def _gamepad(stick_left_x, stick_left_y, stick_right_x, stick_right_y, dpad_x, dpad_y, buttons, description):
    return Gamepad(
        axes={"dx": (stick_left_y, 1.0),      # left stick up: forward
              "dy": (stick_left_x, 1.0),      # left stick left: left
              "dz": (stick_right_y, 1.0),     # right stick up: up
              "droll": (dpad_x, -1.0),        # D-pad right: roll clockwise
              "dpitch": (dpad_y, -1.0),       # D-pad up: tip up
              "dyaw": (stick_right_x, 1.0)},  # right stick left: turn left
        buttons=dict(zip(BUTTONS, buttons)), description=description)


#: joy_node layouts of common gamepads (the README and config/teleop_node.yaml show them)
GAMEPADS = {
    # xpad driver: axes LX LY LT RX RY RT padX padY; buttons A B X Y LB RB back start guide LS RS
    "xbox": _gamepad(0, 1, 3, 4, 6, 7, (4, 0, 1, 3, 2, 7, 6),
                     "Xbox 360 / One / Series (and Logitech F710 with its switch on X)"),
    # hid-sony / hid-playstation: axes LX LY L2 RX RY R2 padX padY;
    # buttons cross circle triangle square L1 R1 L2 R2 share options PS L3 R3
    "ps4": _gamepad(0, 1, 3, 4, 6, 7, (4, 0, 1, 2, 3, 9, 8),
                    "DualShock 4 / DualSense: L1 deadman, cross close, circle open, triangle/square speed"),
    # DirectInput mode (switch on D): axes LX LY RX RY padX padY;
    # buttons X A B Y LB RB LT RT back start LS RS
    "f710": _gamepad(0, 1, 2, 3, 4, 5, (4, 1, 2, 3, 0, 9, 8),
                     "Logitech F710 with its switch on D (DirectInput)"),
}


def gamepad(name: str) -> Gamepad:
    try:
        return GAMEPADS[name]
    except KeyError:
        raise ValueError(f"unknown gamepad {name!r}; choose one of {sorted(GAMEPADS)}") from None


def apply_dead_zone(value: float, dead_zone: float) -> float:
    """0 inside +-dead_zone, then rising linearly to +-1 at full deflection (no jump at the
    edge of the dead zone); NaN/inf count as 0, values beyond +-1 as +-1."""
    value = float(value)
    if not np.isfinite(value):
        return 0.0
    value = max(-1.0, min(1.0, value))
    if abs(value) <= dead_zone:
        return 0.0
    return float(np.sign(value) * (abs(value) - dead_zone) / (1.0 - dead_zone))


def joy_motion(axes, pad: Gamepad, dead_zone: float) -> np.ndarray:
    """The motion [6] a joy message's axes ask for; an axis the device lacks reads 0."""
    motion = np.zeros(len(MOTIONS))
    for i, name in enumerate(MOTIONS):
        index, sign = pad.axes[name]
        if 0 <= index < len(axes):
            motion[i] = sign * apply_dead_zone(axes[index], dead_zone)
    return np.clip(motion, -1.0, 1.0)


def pressed(buttons, index: int) -> bool:
    """Button ``index`` is down; a button the device lacks is never down."""
    return 0 <= index < len(buttons) and bool(buttons[index])


class ButtonEdges:
    """Which named buttons went down since the previous joy message (a held button fires once)."""

    def __init__(self, pad: Gamepad):
        self.pad = pad
        self.down: set[str] = set()

    def update(self, buttons) -> set[str]:
        now = {name for name, index in self.pad.buttons.items() if pressed(buttons, index)}
        rising = now - self.down
        self.down = now
        return rising


class Speed:
    """The speed: one of ``levels`` (fractions of the per-step bounds), stepped up and down."""

    def __init__(self, levels, index: int):
        self.levels = [float(v) for v in levels]
        if not self.levels or not all(0.0 < v <= 1.0 for v in self.levels):
            raise ValueError(f"speed levels must be in (0, 1], got {self.levels}")
        if not 0 <= index < len(self.levels):
            raise ValueError(f"initial speed level {index} is not an index of {self.levels}")
        self.index = int(index)

    @property
    def value(self) -> float:
        return self.levels[self.index]

    def step(self, delta: int) -> float:
        self.index = min(max(self.index + delta, 0), len(self.levels) - 1)
        return self.value


def teleop_action(motion, speed: float, gripper: float) -> np.ndarray:
    """The 7-D action [dx, dy, dz, droll, dpitch, dyaw, gripper]: ``motion`` (fractions in
    [-1, 1]) times ``speed`` times the per-step bounds, then the gripper opening; always
    finite (NaN counts as 0, NaN gripper as open) and within ACTION_LOW/HIGH."""
    motion = np.nan_to_num(np.asarray(motion, dtype=np.float64), nan=0.0, posinf=1.0, neginf=-1.0)
    action = np.empty(ACTION_DIM)
    action[:6] = np.clip(motion, -1.0, 1.0) * float(np.nan_to_num(speed)) * ACTION_HIGH[:6]
    action[6] = OPEN if not np.isfinite(gripper) else gripper
    return np.clip(action, ACTION_LOW, ACTION_HIGH)


# --- keyboard --------------------------------------------------------------------------------

#: key -> (motion, sign)
KEY_MOTIONS = {
    "w": ("dx", 1.0), "s": ("dx", -1.0),        # forward / back
    "a": ("dy", 1.0), "d": ("dy", -1.0),        # left / right
    "r": ("dz", 1.0), "f": ("dz", -1.0),        # up / down
    "o": ("droll", 1.0), "u": ("droll", -1.0),  # roll clockwise / anticlockwise
    "k": ("dpitch", 1.0), "i": ("dpitch", -1.0),  # tip down / up
    "j": ("dyaw", 1.0), "l": ("dyaw", -1.0),    # turn left / right
}
#: key -> command
KEY_COMMANDS = {
    "c": "gripper_close", "v": "gripper_open",
    "+": "speed_up", "=": "speed_up", "-": "speed_down",
    "1": "start_episode", "2": "end_episode",
    " ": "stop", "q": "quit", "\x04": "quit",   # Ctrl-D
}

KEYBOARD_HELP = """\
keyboard teleop: motion only while a key is held (each key press moves for the hold time)
  w/s forward/back (x)   a/d left/right (y)   r/f up/down (z)
  j/l turn left/right (yaw)   i/k tip up/down (pitch)   u/o roll anti/clockwise
  c close gripper   v open gripper   +/- speed up/down   space stop
  1 start_episode   2 end_episode   q quit"""


def split_keys(text: str) -> list[str]:
    """Single key presses from terminal input; escape sequences (arrow and function keys)
    are dropped, so their letters never read as motion keys. Letters are lower-cased."""
    keys: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\x1b":
            i += 1
            if i < len(text) and text[i] in "[O":
                i += 1
                while i < len(text) and not ("@" <= text[i] <= "~"):  # CSI parameters
                    i += 1
            i += 1  # the final byte (or the key after a lone Esc)
            continue
        keys.append(ch.lower() if ch.isalpha() else ch)
        i += 1
    return keys


@dataclass
class KeyboardMotion:
    """Motion from key presses: each motion key drives its axis for ``hold_s`` after its
    latest press or auto-repeat (the deadman of the keyboard); the opposite key of the same
    axis takes over at once."""
    hold_s: float = 0.3
    held: dict[str, tuple[float, float]] = field(default_factory=dict)   # motion -> (sign, time)

    def press(self, key: str, now: float) -> str | None:
        """Handle one key; returns its command (KEY_COMMANDS) or None for motion/unknown keys."""
        if key in KEY_MOTIONS:
            name, sign = KEY_MOTIONS[key]
            self.held[name] = (sign, now)
            return None
        command = KEY_COMMANDS.get(key)
        if command == "stop":
            self.held.clear()
        return command

    def motion(self, now: float) -> np.ndarray:
        motion = np.zeros(len(MOTIONS))
        for i, name in enumerate(MOTIONS):
            sign, since = self.held.get(name, (0.0, -np.inf))
            if now - since <= self.hold_s:
                motion[i] = sign
        return motion

    def moving(self, now: float) -> bool:
        return bool(np.any(self.motion(now)))


class TerminalKeys:
    """Key presses from a terminal in cbreak mode (no line buffering, no echo; Ctrl-C still
    interrupts), restored on exit. ``read()`` never blocks."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdin
        self.fd = self.stream.fileno()
        self.saved = None

    def __enter__(self) -> "TerminalKeys":
        import termios
        import tty

        if not os.isatty(self.fd):
            raise RuntimeError("keyboard teleop needs a terminal on stdin (run it in its own terminal)")
        self.saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc) -> None:
        import termios

        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            self.saved = None

    def read(self) -> str:
        """The keys typed since the last call; a closed terminal reads as Ctrl-D (quit)."""
        chunks = []
        while select.select([self.fd], [], [], 0)[0]:
            try:
                data = os.read(self.fd, 64)
            except OSError:   # the terminal went away (EIO)
                data = b""
            if not data:
                chunks.append(b"\x04")
                break
            chunks.append(data)
        return b"".join(chunks).decode("utf-8", errors="ignore")
