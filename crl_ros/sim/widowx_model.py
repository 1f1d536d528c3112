"""MJCF of the simulated WidowX 250 6DOF and its table-top scene, built from the kinematic facts.

The joint chain is laid out so that every joint axis is exactly the screw axis of
crl_ros.robot.kinematics (the site ``ee_gripper_link`` equals ``kinematics.fk(q)``;
a test checks it). Geometry is primitive: capsules for links, boxes for the gripper.
The world frame is ``base_link``; the table top is the plane z = 0.

Scene (x forward from the robot, y to its left; metres):

- a cabinet with a drawer on a slide joint (opens towards the robot, along -x) whose
  handle stands ``HANDLE_OFFSET`` in front of the drawer face, so a closed gripper can
  hook behind it;
- a fixed tray with a low rim;
- a red block to push and a small yellow cube to pick (free bodies);
- a fixed over-the-shoulder camera ("overhead", the policy camera) at the robot's right, looking
  down at the work area as from a person standing beside the table, and a "scene" camera for pictures.
"""
from __future__ import annotations

import numpy as np

from crl_ros.robot import kinematics

# Arm link offsets along the chain, from the screw axes (see kinematics.SCREW_AXES).
SHOULDER_HEIGHT = 0.11065
ELBOW_OFFSET = (0.04975, 0.25)                # elbow axis relative to the shoulder axis (x, z)
WRIST_ANGLE_X = 0.29975
EE_X = float(kinematics.HOME_EE[0, 3])
ARM_HEIGHT = float(kinematics.HOME_EE[2, 3])  # height of the forearm axis at home
FOREARM_ROLL_X = WRIST_ANGLE_X - 0.15         # where the forearm_roll joint sits along its axis
WRIST_ROTATE_X = WRIST_ANGLE_X + 0.065

# Gripper: each finger slides along the tool y axis; its joint value is the distance of its
# inner face from the centre line, so the gap between the pads is twice the joint value.
FINGER_RANGE = kinematics.FINGER_LIMITS
FINGER_HALF = (0.022, 0.005, 0.012)           # pad half-sizes along tool x, y, z
FINGER_CENTER_X = EE_X - WRIST_ROTATE_X - 0.011  # pad tips end ~1 cm beyond the ee site

# Drawer and cabinet.
DRAWER_Y = 0.14
DRAWER_FRONT_X = 0.36          # drawer face when closed
DRAWER_TRAVEL = 0.11           # slide joint range [0, DRAWER_TRAVEL], positive = open
DRAWER_INNER = (0.12, 0.13)    # inner length (x) and width (y)
DRAWER_WALL_HEIGHT = 0.06
DRAWER_WALL = 0.008
HANDLE_OFFSET = 0.06           # handle bar in front of the drawer face: a closed gripper fits behind it
HANDLE_HEIGHT = 0.04
HANDLE_HALF_WIDTH = 0.05
CABINET_TOP_Z = 0.075

# Tray (fixed) and movable objects.
TRAY_CENTER = (0.32, -0.09)
TRAY_HALF = (0.065, 0.05)
TRAY_RIM_HEIGHT = 0.02
BLOCK_HALF = 0.025
OBJECT_HALF = 0.02

CAMERAS = {
    # the policy camera: over the shoulder of someone at the right of the table, looking at the work area
    "overhead": {"pos": (0.05, -0.45, 0.55), "target": (0.28, 0.04, 0.02), "fovy": 36},
    # a wide view from the front right, for pictures of the scene
    "scene": {"pos": (0.72, -0.48, 0.42), "target": (0.22, 0.03, 0.06), "fovy": 42},
}

#: where distractor objects (crl_ros.sim.shifts, ``distractors``) stand: (low xy, high xy) of a cup's
#: centre, one cup per zone. In the policy camera's view but clear of every task's objects and
#: paths (the reach workspace, the drawer and its handle's travel, the tray, the block and cube
#: areas), and not between the camera and them, so no task is harder to see or to do.
DISTRACTOR_ZONES = [
    ((0.20, 0.27), (0.30, 0.33)),    # behind the block's parking place, left of the cabinet
    ((0.47, -0.08), (0.53, -0.02)),  # right of the tray, in front of the cabinet's side
    ((0.53, 0.26), (0.58, 0.30)),    # behind the cabinet's far corner
]
#: a distractor slot not used in an episode waits here, under the opaque floor backdrop
DISTRACTOR_PARKED = (0.25, 0.02, -2.0)

ARM_ACTUATOR_GAINS = {  # joint: (kp N m/rad, force limit N m)
    "waist": (40.0, 15.0), "shoulder": (60.0, 25.0), "elbow": (40.0, 15.0),
    "forearm_roll": (10.0, 5.0), "wrist_angle": (15.0, 6.0), "wrist_rotate": (6.0, 3.0),
}


def _camera_xml(name: str, pos, target, fovy) -> str:
    pos, target = np.asarray(pos, float), np.asarray(target, float)
    forward = target - pos
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    # MuJoCo cameras look along their -z axis with +y up: xyaxes = (right, up)
    axes = " ".join(f"{v:.5f}" for v in (*right, *up))
    return f'<camera name="{name}" pos="{pos[0]} {pos[1]} {pos[2]}" xyaxes="{axes}" fovy="{fovy}"/>'


def _box(name: str, center, half, rgba: str, extra: str = "") -> str:
    return (f'<geom name="{name}" type="box" pos="{center[0]:.5f} {center[1]:.5f} {center[2]:.5f}" '
            f'size="{half[0]:.5f} {half[1]:.5f} {half[2]:.5f}" rgba="{rgba}" {extra}/>')


# One body per arm joint, base to tip: (body, position in its parent, centre of mass, mass,
# link geometry). Each body's joint turns about that joint's screw axis (kinematics.SCREW_AXES),
# and the positions put every axis where the screw axes say.
ARM_LINKS = [
    ("shoulder_link", (0, 0, 0), (0, 0, 0.07), 0.5, 'type="cylinder" size="0.045 0.035" pos="0 0 0.075"'),
    ("upper_arm_link", (0, 0, SHOULDER_HEIGHT), (0.02, 0, 0.12), 0.4,
     f'type="capsule" size="0.022" fromto="0 0 0 {ELBOW_OFFSET[0]} 0 {ELBOW_OFFSET[1]}"'),
    ("upper_forearm_link", (ELBOW_OFFSET[0], 0, ELBOW_OFFSET[1]), (0.05, 0, 0), 0.3,
     f'type="capsule" size="0.02" fromto="0 0 0 {FOREARM_ROLL_X - ELBOW_OFFSET[0]} 0 0"'),
    ("lower_forearm_link", (FOREARM_ROLL_X - ELBOW_OFFSET[0], 0, 0), (0.07, 0, 0), 0.25,
     f'type="capsule" size="0.018" fromto="0 0 0 {WRIST_ANGLE_X - FOREARM_ROLL_X} 0 0"'),
    ("wrist_link", (WRIST_ANGLE_X - FOREARM_ROLL_X, 0, 0), (0.03, 0, 0), 0.1,
     f'type="capsule" size="0.017" fromto="0 0 0 {WRIST_ROTATE_X - WRIST_ANGLE_X} 0 0"'),
    ("gripper_link", (WRIST_ROTATE_X - WRIST_ANGLE_X, 0, 0), (0.03, 0, 0), 0.15,
     'name="gripper_housing" type="box" pos="0.03 0 0" size="0.02 0.045 0.018"'),
]
LINK_RGBA = "0.15 0.15 0.17 1"
LINK_RADIUS_OF_GYRATION = 0.05  # m: a rough, uniform inertia for the primitive links


def _vec(values) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def _gripper_contents_xml() -> str:
    """The ee site and the two fingers, inside gripper_link."""
    fx, fy, fz = FINGER_HALF
    fingers = "".join(f"""
      <body name="{side}_finger_link" gravcomp="1">
        <joint name="{side}_finger" type="slide" axis="0 {sign} 0" range="{FINGER_RANGE[0]} {FINGER_RANGE[1]}"/>
        <geom name="{side}_finger" type="box" pos="{FINGER_CENTER_X} {sign * fy} 0" size="{fx} {fy} {fz}" mass="0.02"
              rgba="0.85 0.85 0.85 1" friction="1.5 0.02 0.001"/>
      </body>""" for side, sign in (("left", 1), ("right", -1)))
    return f'<site name="ee_gripper_link" pos="{EE_X - WRIST_ROTATE_X} 0 0" size="0.005" rgba="1 0 0 0"/>{fingers}'


def _arm_xml() -> str:
    inner = _gripper_contents_xml()
    for i in reversed(range(len(ARM_LINKS))):
        body, pos, com, mass, geom = ARM_LINKS[i]
        lo, hi = kinematics.JOINT_LIMITS[i]
        inertia = _vec([mass * LINK_RADIUS_OF_GYRATION ** 2] * 3)
        inner = f"""
      <body name="{body}" pos="{_vec(pos)}" gravcomp="1">
        <joint name="{kinematics.JOINT_NAMES[i]}" axis="{_vec(kinematics.SCREW_AXES[i, :3])}" range="{lo:.6f} {hi:.6f}"/>
        <inertial pos="{_vec(com)}" mass="{mass}" diaginertia="{inertia}"/>
        <geom {geom} rgba="{LINK_RGBA}"/>{inner}
      </body>"""
    return f"""
    <body name="base_link">
      <geom type="cylinder" size="0.06 0.02" pos="0 0 0.02" rgba="{LINK_RGBA}"/>{inner}
    </body>"""


def _drawer_xml() -> str:
    length, width = DRAWER_INNER
    w, h = DRAWER_WALL, DRAWER_WALL_HEIGHT
    wood, dark = "0.55 0.38 0.22 1", "0.42 0.28 0.16 1"
    outer_half_y = width / 2 + w
    back_x = length + 2 * w  # drawer depth, from its face
    # cabinet: two side walls, a top and a back, leaving room for the drawer to slide
    cab_len = back_x + 0.01
    cab_half_y = outer_half_y + 0.012
    cabinet = "\n      ".join([
        _box("cabinet_top", (DRAWER_FRONT_X + cab_len / 2, DRAWER_Y, CABINET_TOP_Z + 0.006), (cab_len / 2, cab_half_y, 0.006), dark),
        _box("cabinet_left", (DRAWER_FRONT_X + cab_len / 2, DRAWER_Y + cab_half_y - 0.005, CABINET_TOP_Z / 2), (cab_len / 2, 0.005, CABINET_TOP_Z / 2), dark),
        _box("cabinet_right", (DRAWER_FRONT_X + cab_len / 2, DRAWER_Y - cab_half_y + 0.005, CABINET_TOP_Z / 2), (cab_len / 2, 0.005, CABINET_TOP_Z / 2), dark),
        _box("cabinet_back", (DRAWER_FRONT_X + cab_len + 0.005, DRAWER_Y, CABINET_TOP_Z / 2), (0.005, cab_half_y, CABINET_TOP_Z / 2), dark),
    ])
    # drawer body frame: origin at the middle of its face at table height
    drawer = "\n        ".join([
        _box("drawer_bottom", (back_x / 2, 0, 0.004), (back_x / 2, outer_half_y, 0.004), wood),
        _box("drawer_front", (w / 2, 0, h / 2), (w / 2, outer_half_y, h / 2), wood),
        _box("drawer_back", (back_x - w / 2, 0, h / 2), (w / 2, outer_half_y, h / 2), wood),
        _box("drawer_left", (back_x / 2, outer_half_y - w / 2, h / 2), (back_x / 2, w / 2, h / 2), wood),
        _box("drawer_right", (back_x / 2, -outer_half_y + w / 2, h / 2), (back_x / 2, w / 2, h / 2), wood),
        _box("handle_bar", (-HANDLE_OFFSET, 0, HANDLE_HEIGHT), (0.006, HANDLE_HALF_WIDTH, 0.006), "0.8 0.8 0.82 1"),
        _box("handle_post_left", (-HANDLE_OFFSET / 2, HANDLE_HALF_WIDTH - 0.006, HANDLE_HEIGHT), (HANDLE_OFFSET / 2, 0.006, 0.005), "0.8 0.8 0.82 1"),
        _box("handle_post_right", (-HANDLE_OFFSET / 2, -HANDLE_HALF_WIDTH + 0.006, HANDLE_HEIGHT), (HANDLE_OFFSET / 2, 0.006, 0.005), "0.8 0.8 0.82 1"),
    ])
    return f"""
    {cabinet}
    <body name="drawer" pos="{DRAWER_FRONT_X} {DRAWER_Y} 0.0005">
      <joint name="drawer_slide" type="slide" axis="-1 0 0" range="0 {DRAWER_TRAVEL}" damping="8" frictionloss="0.3" armature="0.2"/>
      <inertial pos="{back_x / 2} 0 0.02" mass="0.5" diaginertia="0.002 0.002 0.002"/>
        {drawer}
    </body>"""


def _tray_xml() -> str:
    cx, cy = TRAY_CENTER
    hx, hy = TRAY_HALF
    rim, t = TRAY_RIM_HEIGHT, 0.004
    green = "0.25 0.6 0.3 1"
    return "\n    ".join([
        _box("tray_bottom", (cx, cy, 0.002), (hx, hy, 0.002), green),
        _box("tray_rim_far", (cx + hx - t, cy, rim / 2), (t, hy, rim / 2), green),
        _box("tray_rim_near", (cx - hx + t, cy, rim / 2), (t, hy, rim / 2), green),
        _box("tray_rim_left", (cx, cy + hy - t, rim / 2), (hx, t, rim / 2), green),
        _box("tray_rim_right", (cx, cy - hy + t, rim / 2), (hx, t, rim / 2), green),
    ])


def _distractors_xml(count: int) -> str:
    """``count`` distractor slots: static cups (cylinders) that collide with nothing, so they
    can never block a task; crl_ros.sim.shifts places, sizes and colours them per episode."""
    return "\n    ".join(
        f'<body name="distractor_{i}" pos="{_vec(DISTRACTOR_PARKED)}"><geom name="distractor_{i}" type="cylinder" '
        f'size="0.025 0.04" rgba="0.5 0.5 0.5 1" contype="0" conaffinity="0"/></body>' for i in range(count))


def build_mjcf(max_render_size: int = 640, distractors: int = 0) -> str:
    """The complete scene as an MJCF string (offscreen buffers up to ``max_render_size``), with
    ``distractors`` distractor slots (0, the default, builds today's scene exactly)."""
    if not 0 <= distractors <= len(DISTRACTOR_ZONES):
        raise ValueError(f"{distractors} distractors: the scene has room for 0-{len(DISTRACTOR_ZONES)}")
    cameras = "\n    ".join(_camera_xml(name, **spec) for name, spec in CAMERAS.items())
    actuators = "\n    ".join(
        f'<position name="{name}" joint="{name}" kp="{kp}" dampratio="1" forcerange="{-f} {f}" '
        f'ctrlrange="{lo:.6f} {hi:.6f}"/>'
        for (name, (kp, f)), (lo, hi) in zip(ARM_ACTUATOR_GAINS.items(), kinematics.JOINT_LIMITS))
    fingers = "\n    ".join(
        f'<position name="{name}" joint="{name}" kp="300" dampratio="1" forcerange="-8 8" '
        f'ctrlrange="{FINGER_RANGE[0]} {FINGER_RANGE[1]}"/>' for name in ("left_finger", "right_finger"))
    return f"""<mujoco model="widowx250s_scene">
  <compiler angle="radian" autolimits="true"/>
  <!-- 10 ms physics steps, 20 per 0.2 s control step: stable with implicitfast and position actuators -->
  <option timestep="0.01" integrator="implicitfast" cone="elliptic" impratio="5"/>
  <visual>
    <global offwidth="{max_render_size}" offheight="{max_render_size}"/>
    <!-- coarse tessellation and no multisampling: software rendering at 48x48 is 5-10x faster -->
    <quality shadowsize="0" numslices="12" numstacks="8" offsamples="0"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.5 0.5 0.5" specular="0 0 0"/>
  </visual>
  <default>
    <joint armature="0.02" damping="0.5"/>
    <geom friction="1 0.01 0.001"/>
  </default>
  <worldbody>
    <light pos="0.3 0 1.2" dir="0 0 -1" diffuse="0.35 0.35 0.35" castshadow="false"/>
    <geom name="table" type="box" pos="0.25 0.02 -0.02" size="0.5 0.45 0.02" rgba="0.78 0.76 0.72 1"/>
    <geom name="floor_backdrop" type="box" pos="0.25 0.02 -0.6" size="3 3 0.01" rgba="0.35 0.37 0.4 1" contype="0" conaffinity="0"/>
    {cameras}
    {_arm_xml()}
    {_drawer_xml()}
    {_tray_xml()}
    <body name="block" pos="0.25 0.0 {BLOCK_HALF}">
      <freejoint name="block"/>
      <geom name="block" type="box" size="{BLOCK_HALF} {BLOCK_HALF} {BLOCK_HALF}" mass="0.15" rgba="0.85 0.15 0.12 1" friction="0.6 0.01 0.001"/>
    </body>
    <body name="object" pos="0.22 -0.03 {OBJECT_HALF}">
      <freejoint name="object"/>
      <geom name="object" type="box" size="{OBJECT_HALF} {OBJECT_HALF} {OBJECT_HALF}" mass="0.05" rgba="0.95 0.8 0.1 1" friction="1.5 0.02 0.001" condim="4"/>
    </body>
    {_distractors_xml(distractors)}
  </worldbody>
  <equality>
    <!-- grasp assist: welds the object to the gripper while the closed fingers hold it (see WidowXSim) -->
    <weld name="grasp_assist" body1="gripper_link" body2="object" active="false" solref="0.02 1"/>
  </equality>
  <contact>
    <exclude body1="gripper_link" body2="left_finger_link"/>
    <exclude body1="gripper_link" body2="right_finger_link"/>
  </contact>
  <actuator>
    {actuators}
    {fingers}
  </actuator>
</mujoco>"""
