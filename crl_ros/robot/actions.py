"""The 7-D end-effector delta action convention of the BridgeData WidowX stack.

An action is ``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` applied once per control
step (5 Hz):

- ``dx, dy, dz``: translation of ee_gripper_link in the base frame, metres, |d| <= 0.05;
- ``droll, dpitch, dyaw``: a rotation about the fixed base x, y, z axes, radians,
  |d| <= 0.25, applied on the left of the current orientation
  (``R_new = rpy_to_matrix(droll, dpitch, dyaw) @ R_current``), so small deltas act
  like an angular velocity in the base frame;
- ``gripper``: absolute opening in [0, 1], 1 = open, 0 = closed.

The commanded pose is then clamped to the workspace (xyz box, pitch and yaw within
+-1.57 rad) and solved by IK from the current joints; see `apply_ee_delta`.
numpy only: used by the simulator and by the real arm's ROS node alike.
"""
from __future__ import annotations

import numpy as np

from crl_ros.robot import kinematics

ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
ACTION_DIM = len(ACTION_NAMES)
MAX_TRANSLATION = 0.05  # m per step
MAX_ROTATION = 0.25     # rad per step
ACTION_LOW = np.array([-MAX_TRANSLATION] * 3 + [-MAX_ROTATION] * 3 + [0.0], dtype=np.float32)
ACTION_HIGH = np.array([MAX_TRANSLATION] * 3 + [MAX_ROTATION] * 3 + [1.0], dtype=np.float32)
CONTROL_RATE_HZ = 5.0

#: [[x, y, z], ...] lower and upper corner of the reachable box for ee_gripper_link (m, base frame)
WORKSPACE_XYZ = np.array([[0.1, -0.15, -0.1], [0.45, 0.25, 0.18]])
#: |pitch| and |yaw| of the commanded orientation stay within this (rad); roll is free
WORKSPACE_MAX_PITCH = 1.57
WORKSPACE_MAX_YAW = 1.57

#: BridgeData's default start: ee at [0.3, 0, 0.15], level orientation, gripper open
DEFAULT_START_XYZRPY = np.array([0.3, 0.0, 0.15, 0.0, 0.0, 0.0])


def clip_action(action: np.ndarray) -> np.ndarray:
    """Clip a 7-D action to [ACTION_LOW, ACTION_HIGH]; NaN/inf raise ValueError."""
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (ACTION_DIM,):
        raise ValueError(f"action must have shape ({ACTION_DIM},), got {action.shape}")
    if not np.isfinite(action).all():
        raise ValueError(f"action is not finite: {action}")
    return np.clip(action, ACTION_LOW, ACTION_HIGH)


def clamp_workspace(pose: np.ndarray) -> tuple[np.ndarray, bool]:
    """Clamp a 4x4 ee pose into the workspace box and the pitch/yaw limits.

    Returns ``(pose, clamped)``. The orientation is left exactly as given when it is
    within limits (no round trip through Euler angles, which is singular near pitch
    +-pi/2).
    """
    clamped_pose = pose.copy()
    xyz = np.clip(pose[:3, 3], WORKSPACE_XYZ[0], WORKSPACE_XYZ[1])
    clamped_pose[:3, 3] = xyz
    clamped = bool(np.any(xyz != pose[:3, 3]))
    roll, pitch, yaw = kinematics.matrix_to_rpy(pose[:3, :3])
    if abs(pitch) > WORKSPACE_MAX_PITCH or abs(yaw) > WORKSPACE_MAX_YAW:
        clamped_pose[:3, :3] = kinematics.rpy_to_matrix(
            roll, np.clip(pitch, -WORKSPACE_MAX_PITCH, WORKSPACE_MAX_PITCH),
            np.clip(yaw, -WORKSPACE_MAX_YAW, WORKSPACE_MAX_YAW))
        clamped = True
    return clamped_pose, clamped


def compose_ee_delta(pose: np.ndarray, action: np.ndarray) -> np.ndarray:
    """The pose an (already clipped) action asks for, before workspace clamping."""
    target = pose.copy()
    target[:3, 3] = pose[:3, 3] + action[:3]
    target[:3, :3] = kinematics.rpy_to_matrix(*action[3:6]) @ pose[:3, :3]
    return target


def apply_ee_delta(q6: np.ndarray, action7: np.ndarray,
                   step_seconds: float = 1.0 / CONTROL_RATE_HZ) -> tuple[np.ndarray, float, dict]:
    """Turn one 7-D action into joint targets for the arm at joint angles ``q6``.

    Steps: clip the action; compose it with ``fk(q6)``; clamp to the workspace; solve
    IK from ``q6``; limit each joint's move to VELOCITY_LIMITS * ``step_seconds``.
    Returns ``(q6_target, gripper, info)`` where ``gripper`` is the opening in [0, 1]
    and ``info`` holds ``target_pose`` (4x4 after clamping), ``clamped`` (the
    workspace changed the request), ``ik_success`` and ``velocity_limited``.
    """
    q6 = np.asarray(q6, dtype=float)
    action = clip_action(action7)
    target, clamped = clamp_workspace(compose_ee_delta(kinematics.fk(q6), action))
    q_target, ik_success = kinematics.ik(target, q6)
    max_move = kinematics.VELOCITY_LIMITS * step_seconds
    limited = np.clip(q_target, q6 - max_move, q6 + max_move)
    info = {
        "target_pose": target,
        "clamped": clamped,
        "ik_success": ik_success,
        "velocity_limited": bool(np.any(limited != q_target)),
    }
    return limited, float(action[6]), info
