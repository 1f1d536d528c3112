"""Distribution shifts of the simulated WidowX world, drawn per episode from its seed.

A shift is what a real camera and room do to the images a policy sees: the camera mount
bumped or turned, another lens, the light, the exposure, sensor noise, JPEG, blur, a cup
left on the table, another table. `ShiftSpec` is what was asked for (``--shift NAME=VALUE``,
``--randomize NAME=RANGE``); ``spec.draw(seed)`` turns it into one episode's concrete
`ShiftDraw`, which `WidowXSim.set_shift` applies to the scene and the camera pipeline.

Values (see SHIFTS for each name's unit and limits):

- ``NAME=V``: V as given. For a shift with a direction (``camera_pos``, ``camera_rot``,
  ``light_dir``, ``table_colour``) V is the size and the direction is drawn per episode.
- ``NAME=+-V``: size V with a random sign per episode (signed shifts only).
- ``NAME=LO:HI``: drawn uniformly in [LO, HI] per episode (integers: inclusive).
- ``NAME=mild|moderate|strong``: the severity presets of PRESETS (signed shifts: ``+-V``).
- ``--randomize NAME[=V]``: the range up to V (signed shifts ``-V:V``, others ``0:V``); no
  V means ``moderate``.

Each shift name draws from its own random stream of (episode seed, name), so adding a
shift never changes another's draw, and the task's start and goal (drawn from the episode
seed by the task) are the same with and without shifts. numpy only; the simulator and
the image functions of crl_ros.robot.camera apply a draw.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from crl_ros.robot import camera as camera_pipeline
from crl_ros.sim.widowx_model import DISTRACTOR_ZONES


@dataclass(frozen=True)
class ShiftKind:
    """One shift name: how its value is read and where it acts."""
    kind: str            # "signed" (a +-V value), "size" (>= 0, a direction drawn if it has one), "integer"
    unit: str
    presets: tuple       # (mild, moderate, strong)
    limits: tuple        # (lowest, highest) value accepted
    help: str
    nominal: float = 0.0  # the value that means no shift (jpeg: the best quality)


#: every shift: name -> kind. Scene-level shifts change the MuJoCo model (camera, light, table,
#: distractors); image-level ones act on the rendered camera frame (crl_ros.robot.camera).
SHIFTS: dict[str, ShiftKind] = {
    "camera_pos": ShiftKind("size", "m", (0.01, 0.02, 0.04), (0.0, 0.2),
                            "policy camera moved this far in a random direction"),
    "camera_x": ShiftKind("signed", "m", (0.01, 0.02, 0.04), (-0.2, 0.2), "policy camera moved along x (forward)"),
    "camera_y": ShiftKind("signed", "m", (0.01, 0.02, 0.04), (-0.2, 0.2), "policy camera moved along y (left)"),
    "camera_z": ShiftKind("signed", "m", (0.01, 0.02, 0.04), (-0.2, 0.2), "policy camera moved along z (up)"),
    "camera_rot": ShiftKind("size", "deg", (1.5, 3.0, 6.0), (0.0, 30.0),
                            "policy camera turned this much about a random axis through it"),
    "camera_yaw": ShiftKind("signed", "deg", (1.5, 3.0, 6.0), (-30.0, 30.0),
                            "policy camera turned about the vertical (+ = counter-clockwise from above)"),
    "camera_pitch": ShiftKind("signed", "deg", (1.5, 3.0, 6.0), (-30.0, 30.0),
                              "policy camera tilted about its horizontal axis (+ = view up)"),
    "camera_roll": ShiftKind("signed", "deg", (1.5, 3.0, 6.0), (-30.0, 30.0),
                             "policy camera rolled about its optical axis"),
    "fov": ShiftKind("signed", "deg", (2.0, 4.0, 8.0), (-20.0, 30.0), "change of the vertical field of view (36 deg)"),
    "light": ShiftKind("signed", "fraction", (0.15, 0.3, 0.6), (-0.9, 2.0),
                       "light intensity change (0.3 = 30% brighter), every light"),
    "light_dir": ShiftKind("size", "deg", (15.0, 30.0, 60.0), (0.0, 80.0),
                           "ceiling light's direction tilted this much towards a random side"),
    "brightness": ShiftKind("signed", "fraction of 255", (0.05, 0.1, 0.2), (-1.0, 1.0),
                            "image brightness offset (0.1 = +25.5 grey levels)"),
    "contrast": ShiftKind("signed", "fraction", (0.1, 0.2, 0.4), (-0.9, 2.0),
                          "image contrast change about mid-grey (0.2 = 20% more)"),
    "colour": ShiftKind("signed", "fraction", (0.05, 0.1, 0.2), (-0.9, 0.9),
                        "white balance: red gain 1+V, blue gain 1-V (+ = warmer)"),
    "noise": ShiftKind("size", "grey levels", (2.0, 5.0, 10.0), (0.0, 100.0),
                       "Gaussian sensor noise, std as seen in the policy image"),
    "jpeg": ShiftKind("integer", "quality", (70, 40, 15), (1, 95),
                      "JPEG quality of the frame, decoded as camera_node decodes image_raw/compressed", nominal=95),
    "blur": ShiftKind("size", "policy pixels", (0.5, 1.0, 2.0), (0.0, 10.0),
                      "Gaussian blur (defocus), sigma in pixels of the policy image"),
    # moderate is one object (the severity); a fraction of one is no object, so mild is one too
    "distractors": ShiftKind("integer", "objects", (1, 1, 3), (0, len(DISTRACTOR_ZONES)),
                             "objects left on the table, clear of the task's objects"),
    "table_colour": ShiftKind("size", "RGB (0-1)", (0.1, 0.2, 0.4), (0.0, 1.0),
                              "table colour moved this far in a random RGB direction"),
}
SEVERITIES = ("mild", "moderate", "strong")
#: severity -> {shift name: value text}: what ``NAME=moderate`` means
PRESETS = {level: {name: (f"+-{k.presets[i]}" if k.kind == "signed" else str(k.presets[i]))
                   for name, k in SHIFTS.items()} for i, level in enumerate(SEVERITIES)}
GOAL_CASES = ("same", "nominal")
_SHIFT_STREAM = 0x5F1F7  # separates shift draws from the task's own use of the episode seed


@dataclass(frozen=True)
class ShiftValue:
    """How one shift's amount is drawn per episode: uniform in [low, high] (equal: fixed),
    then negated with probability 1/2 when ``random_sign``."""
    low: float
    high: float
    random_sign: bool = False
    integer: bool = False

    def sample(self, rng: np.random.Generator) -> float:
        if self.low == self.high:
            amount = self.low
        elif self.integer:
            amount = float(rng.integers(int(self.low), int(self.high) + 1))
        else:
            amount = float(rng.uniform(self.low, self.high))
        if self.random_sign and rng.random() < 0.5:
            amount = -amount
        return amount

    def text(self) -> str:
        fmt = (lambda v: str(int(v))) if self.integer else (lambda v: f"{v:g}")
        amount = fmt(self.low) if self.low == self.high else f"{fmt(self.low)}:{fmt(self.high)}"
        return f"+-{amount}" if self.random_sign else amount


def parse_shift(text: str, randomize: bool = False) -> tuple[str, ShiftValue]:
    """``"NAME=VALUE"`` -> (name, ShiftValue); ValueError naming the problem. With
    ``randomize`` (``crl demos --randomize``) a value V means the range up to V and no
    value means ``moderate``."""
    name, sep, value = str(text).partition("=")
    name, value = name.strip(), value.strip()
    if name not in SHIFTS:
        raise ValueError(f"unknown shift {name!r}; choose from {', '.join(SHIFTS)}")
    kind = SHIFTS[name]
    if not sep or not value:
        if not randomize:
            raise ValueError(f"shift {name!r} needs a value: {name}=VALUE ({kind.unit}), or {name}=moderate")
        value = "moderate"
    if value in SEVERITIES:
        value = PRESETS[value][name]
        if randomize:  # the preset's size: the range up to it, both signs for a signed shift
            value = value.removeprefix("+-")
    random_sign = value.startswith("+-")
    body = value[2:] if random_sign else value
    try:
        bounds = [float(v) for v in body.split(":")]
    except ValueError:
        raise ValueError(f"shift {name}={value}: not a number, LO:HI, +-V or one of {', '.join(SEVERITIES)}") from None
    if len(bounds) > 2 or not all(np.isfinite(bounds)):
        raise ValueError(f"shift {name}={value}: give one number V, +-V or a range LO:HI")
    if random_sign and (kind.kind != "signed" or len(bounds) != 1):
        raise ValueError(f"shift {name}={value}: +-V only for a single value of a signed shift "
                         f"({name} is {kind.kind}-valued)")
    if kind.kind == "integer" and any(v != int(v) for v in bounds):
        raise ValueError(f"shift {name}={value}: {name} takes whole numbers")
    if randomize and len(bounds) == 1 and not random_sign:  # up to V: from the nominal world to V
        v = bounds[0]
        bounds = [-abs(v), abs(v)] if kind.kind == "signed" else sorted([kind.nominal, v])
    low, high = bounds[0], bounds[-1]
    lo_limit, hi_limit = kind.limits
    for v in (low, high) if not random_sign else (-low, low):
        if not lo_limit <= v <= hi_limit:
            raise ValueError(f"shift {name}={value}: {v:g} {kind.unit} is outside [{lo_limit:g}, {hi_limit:g}]")
    if low > high:
        raise ValueError(f"shift {name}={value}: the range LO:HI needs LO <= HI")
    return name, ShiftValue(low, high, random_sign, integer=kind.kind == "integer")


@dataclass(eq=False)
class ShiftDraw:
    """One episode's concrete shift. The defaults are the nominal world (no shift)."""
    seed: int = 0
    camera_offset: np.ndarray = field(default_factory=lambda: np.zeros(3))   # m, world frame
    camera_turn_world: np.ndarray = field(default_factory=lambda: np.array([1.0, 0, 0, 0]))  # quaternion
    camera_turn_local: np.ndarray = field(default_factory=lambda: np.array([1.0, 0, 0, 0]))  # in the camera frame
    fov_delta: float = 0.0
    light_scale: float = 1.0
    light_tilt_deg: float = 0.0
    light_azimuth: float = 0.0
    table_rgb_delta: np.ndarray = field(default_factory=lambda: np.zeros(3))
    #: each: (x, y, radius, half height, r, g, b), placed in distinct DISTRACTOR_ZONES
    distractors: list = field(default_factory=list)
    brightness: float = 0.0
    contrast: float = 0.0
    colour: float = 0.0
    noise: float = 0.0
    blur: float = 0.0
    jpeg_quality: int | None = None

    @property
    def changes_image(self) -> bool:
        """Whether any image-level shift is on (else the camera pipeline is today's, bit for bit)."""
        return bool(self.brightness or self.contrast or self.colour or self.noise or self.blur
                    or self.jpeg_quality is not None)


@dataclass(frozen=True)
class ShiftSpec:
    """The shifts asked for, and which goal case: ``goal="same"`` renders the goal image
    under the episode's shift (camera moved before the goal was captured), ``"nominal"``
    renders it in the nominal world (camera moved after)."""
    values: Mapping[str, ShiftValue] = field(default_factory=dict)
    goal: str = "same"

    def __post_init__(self):
        if self.goal not in GOAL_CASES:
            raise ValueError(f"goal shift {self.goal!r}: choose {' or '.join(GOAL_CASES)}")
        unknown = [n for n in self.values if n not in SHIFTS]
        if unknown:
            raise ValueError(f"unknown shift(s) {unknown}; choose from {', '.join(SHIFTS)}")

    @classmethod
    def parse(cls, shifts: Sequence[str] = (), randomize: Sequence[str] = (), goal: str = "same") -> "ShiftSpec":
        """From ``--shift NAME=VALUE ...`` and ``--randomize NAME[=RANGE] ...`` texts; a name
        given twice is a ValueError."""
        values: dict[str, ShiftValue] = {}
        for text, is_range in [(t, False) for t in shifts] + [(t, True) for t in randomize]:
            name, value = parse_shift(text, randomize=is_range)
            if name in values:
                raise ValueError(f"shift {name!r} is given twice")
            values[name] = value
        return cls(values, goal)

    def __bool__(self) -> bool:
        return bool(self.values)

    @property
    def max_distractors(self) -> int:
        """Distractor bodies the scene must be built with."""
        value = self.values.get("distractors")
        return int(value.high) if value is not None else 0

    def describe(self, goal: bool = True) -> str:
        """``"camera_yaw=3 light=+-0.3, goal same"`` (without ``goal``: no goal case), or
        ``"none"``: for tables and JSON."""
        if not self.values:
            return "none"
        return " ".join(f"{n}={v.text()}" for n, v in self.values.items()) + (f", goal {self.goal}" if goal else "")

    def draw(self, seed: int) -> ShiftDraw:
        """The concrete shift of the episode reset with ``seed`` (same seed, same draw)."""
        out = ShiftDraw(seed=int(seed))
        for name, value in self.values.items():
            rng = np.random.default_rng([_SHIFT_STREAM, int(seed) & 0xFFFFFFFF, list(SHIFTS).index(name)])
            _apply_amount(out, name, value.sample(rng), rng)
        return out


def _random_unit(rng: np.random.Generator, dim: int = 3) -> np.ndarray:
    v = rng.normal(size=dim)
    return v / np.linalg.norm(v)


def axis_angle_quat(axis, degrees: float) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a turn of ``degrees`` about ``axis``."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    half = np.radians(degrees) / 2
    return np.concatenate([[np.cos(half)], np.sin(half) * axis])


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of (w, x, y, z) quaternions."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def _apply_amount(out: ShiftDraw, name: str, amount: float, rng: np.random.Generator) -> None:
    """Add one shift's drawn ``amount`` to ``out`` (shifts of one kind add up: camera_pos + camera_z)."""
    if name == "camera_pos":
        out.camera_offset = out.camera_offset + amount * _random_unit(rng)
    elif name in ("camera_x", "camera_y", "camera_z"):
        out.camera_offset = out.camera_offset + amount * np.eye(3)["xyz".index(name[-1])]
    elif name in ("camera_rot", "camera_yaw"):  # about world axes through the camera
        axis = _random_unit(rng) if name == "camera_rot" else np.array([0.0, 0.0, 1.0])
        out.camera_turn_world = quat_mul(axis_angle_quat(axis, amount), out.camera_turn_world)
    elif name in ("camera_pitch", "camera_roll"):  # MuJoCo camera frame: x right, y up, looking along -z
        axis = [1.0, 0.0, 0.0] if name == "camera_pitch" else [0.0, 0.0, -1.0]
        out.camera_turn_local = quat_mul(out.camera_turn_local, axis_angle_quat(axis, amount))
    elif name == "fov":
        out.fov_delta = amount
    elif name == "light":
        out.light_scale = 1.0 + amount
    elif name == "light_dir":
        out.light_tilt_deg, out.light_azimuth = amount, float(rng.uniform(0, 2 * np.pi))
    elif name == "table_colour":
        out.table_rgb_delta = amount * _random_unit(rng)
    elif name == "distractors":
        out.distractors = _draw_distractors(int(amount), rng)
    elif name == "jpeg":
        out.jpeg_quality = int(amount)
    else:  # image-level scalars: brightness, contrast, colour, noise, blur
        setattr(out, name, amount)


#: distractor colours: everyday objects unlike the task's red block, yellow cube and green tray
DISTRACTOR_RGB = [(0.15, 0.3, 0.85), (0.9, 0.9, 0.92), (0.55, 0.2, 0.6), (0.1, 0.65, 0.7), (0.95, 0.5, 0.15),
                  (0.3, 0.3, 0.3)]


def _draw_distractors(count: int, rng: np.random.Generator) -> list:
    """``count`` cups in distinct zones (crl_ros.sim.widowx_model.DISTRACTOR_ZONES): position
    within the zone, radius 2-3 cm, height 6-10 cm, a colour of DISTRACTOR_RGB."""
    zones = rng.choice(len(DISTRACTOR_ZONES), size=count, replace=False)
    out = []
    for z in zones:
        low, high = DISTRACTOR_ZONES[z]
        x, y = rng.uniform(low, high)
        rgb = DISTRACTOR_RGB[rng.integers(len(DISTRACTOR_RGB))]
        out.append((float(x), float(y), float(rng.uniform(0.02, 0.03)), float(rng.uniform(0.03, 0.05)), *rgb))
    return out


# -- the camera pipeline under a shift ----------------------------------------------------------
def shifted_observation(frame: np.ndarray, size: int, draw: ShiftDraw, rng: np.random.Generator,
                        supersample: int) -> np.ndarray:
    """A policy observation of ``size`` x ``size`` from a rendered camera ``frame`` under the
    image-level shifts of ``draw``, in the order a camera applies them: blur (optics),
    white balance / brightness / contrast (exposure), noise (sensor), JPEG (transport,
    decoded as camera_node decodes image_raw/compressed), then the camera pipeline's
    resize. Blur and noise are stated in policy pixels, so they are scaled by the frame's
    ``supersample`` (area averaging of s x s pixels divides iid noise by s)."""
    frame = camera_pipeline.check_rgb(frame)
    if draw.blur:
        frame = camera_pipeline.gaussian_blur(frame, draw.blur * supersample)
    if draw.brightness or draw.contrast or draw.colour:
        frame = camera_pipeline.adjust_exposure(frame, draw.brightness, draw.contrast, draw.colour)
    if draw.noise:
        frame = camera_pipeline.add_noise(frame, draw.noise * supersample, rng)
    if draw.jpeg_quality is not None:
        data = camera_pipeline.encode_compressed(frame, "jpeg", draw.jpeg_quality)
        return camera_pipeline.preprocess_compressed(data, "jpeg", crop=None, size=(size, size))[0]
    return camera_pipeline.preprocess_image(frame, crop=None, size=(size, size))


def shift_help() -> str:
    """One line per shift for --help: name, unit, presets."""
    return "; ".join(f"{n} ({k.unit}; mild/moderate/strong {'/'.join(PRESETS[s][n] for s in SEVERITIES)}): {k.help}"
                     for n, k in SHIFTS.items())
