"""WidowX 250 6DOF (wx250s) kinematics: forward kinematics by product of exponentials,
damped-least-squares inverse kinematics, joint limits and pose helpers.

numpy only: shared by the MuJoCo simulator (crl_ros.sim) and the real-arm controller.
All poses are 4x4 homogeneous transforms of the ``ee_gripper_link`` frame in the
``base_link`` frame (metres, radians). Facts from shared/design/widowx250s.md.

Euler convention everywhere in crl_ros (and in the Interbotix API): roll, pitch, yaw
about the fixed x, y, z axes, i.e. ``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)``.
"""
from __future__ import annotations

import numpy as np

JOINT_NAMES = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"]
GRIPPER_JOINT_NAMES = ["gripper", "left_finger", "right_finger"]
#: the joint names a WidowX driver publishes on ``joint_states``, in this order
JOINT_STATE_NAMES = JOINT_NAMES + GRIPPER_JOINT_NAMES

# [lower, upper] per arm joint, radians
JOINT_LIMITS = np.array([
    [-np.pi, np.pi],                              # waist
    [np.deg2rad(-108.0), np.deg2rad(114.0)],      # shoulder
    [np.deg2rad(-123.0), np.deg2rad(92.0)],       # elbow
    [-np.pi, np.pi],                              # forearm_roll
    [np.deg2rad(-100.0), np.deg2rad(123.0)],      # wrist_angle
    [-np.pi, np.pi],                              # wrist_rotate
])
VELOCITY_LIMITS = np.full(6, np.pi)  # rad/s
#: finger joint travel (m): distance of each finger from the gripper centre line
FINGER_LIMITS = (0.015, 0.037)

#: ee_gripper_link at all-zero joints (base_link frame)
HOME_EE = np.array([
    [1.0, 0.0, 0.0, 0.458325],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.36065],
    [0.0, 0.0, 0.0, 1.0],
])
SLEEP_POSE = np.array([0.0, -1.80, 1.55, 0.0, 0.8, 0.0])

# Space-frame screw axes (w; v), one row per joint.
SCREW_AXES = np.array([
    [0, 0, 1, 0, 0, 0],
    [0, 1, 0, -0.11065, 0, 0],
    [0, 1, 0, -0.36065, 0, 0.04975],
    [1, 0, 0, 0, 0.36065, 0],
    [0, 1, 0, -0.36065, 0, 0.29975],
    [1, 0, 0, 0, 0.36065, 0],
], dtype=float)


def clip_to_limits(q6: np.ndarray) -> np.ndarray:
    """The six arm joint angles clipped into JOINT_LIMITS."""
    return np.clip(np.asarray(q6, dtype=float), JOINT_LIMITS[:, 0], JOINT_LIMITS[:, 1])


def skew(w: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])


def rotation_about(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' formula for a unit ``axis``."""
    k = skew(axis)
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def screw_exp(screw: np.ndarray, theta: float) -> np.ndarray:
    """exp([S] theta) for a revolute screw axis S = (w; v) with unit w."""
    w, v = screw[:3], screw[3:]
    k = skew(w)
    t = np.eye(4)
    t[:3, :3] = rotation_about(w, theta)
    t[:3, 3] = (np.eye(3) * theta + (1.0 - np.cos(theta)) * k + (theta - np.sin(theta)) * (k @ k)) @ v
    return t


# Each joint as a unit axis w and a point on the axis (v = -w x point for a revolute screw);
# with these, exp([S] theta) = [R(w, theta), (I - R) point], which is cheaper to evaluate.
_AXES = SCREW_AXES[:, :3]
_AXIS_POINTS = np.cross(_AXES, SCREW_AXES[:, 3:])  # w x v = w x (q x w) = q for q perpendicular to w
_AXIS_SKEWS = np.array([skew(w) for w in _AXES])
_AXIS_SKEWS_SQUARED = _AXIS_SKEWS @ _AXIS_SKEWS


def _chain(q6: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joint axes and axis points in the base frame at ``q6``, and the ee pose."""
    q6 = np.asarray(q6, dtype=float)
    # Rodrigues for all joints at once; the offsets (I - R) point of every exp([S] theta)
    joint_rots = (np.eye(3) + np.sin(q6)[:, None, None] * _AXIS_SKEWS
                  + (1.0 - np.cos(q6))[:, None, None] * _AXIS_SKEWS_SQUARED)
    joint_offsets = _AXIS_POINTS - np.einsum("ijk,ik->ij", joint_rots, _AXIS_POINTS)
    rot, pos = np.eye(3), np.zeros(3)
    axes, points = np.empty((6, 3)), np.empty((6, 3))
    for i in range(6):
        axes[i] = rot @ _AXES[i]
        points[i] = rot @ _AXIS_POINTS[i] + pos
        pos = pos + rot @ joint_offsets[i]
        rot = rot @ joint_rots[i]
    pose = np.eye(4)
    pose[:3, :3] = rot @ HOME_EE[:3, :3]
    pose[:3, 3] = rot @ HOME_EE[:3, 3] + pos
    return axes, points, pose


def fk(q6: np.ndarray) -> np.ndarray:
    """Pose (4x4) of ee_gripper_link for the six arm joint angles ``q6`` (product of exponentials)."""
    return _chain(q6)[2]


def fk_many(q: np.ndarray) -> np.ndarray:
    """`fk` of every row of ``q`` [N, 6] at once: poses [N, 4, 4]. The same chain as `_chain`,
    vectorised over the rows (a converted bag has thousands of steps; per row it is ~20x faster)."""
    q = np.asarray(q, dtype=float).reshape(-1, 6)
    sin, cos = np.sin(q)[:, :, None, None], (1.0 - np.cos(q))[:, :, None, None]
    joint_rots = np.eye(3) + sin * _AXIS_SKEWS + cos * _AXIS_SKEWS_SQUARED            # [N, 6, 3, 3]
    joint_offsets = _AXIS_POINTS - np.einsum("nijk,ik->nij", joint_rots, _AXIS_POINTS)  # [N, 6, 3]
    rot = np.broadcast_to(np.eye(3), (len(q), 3, 3))
    pos = np.zeros((len(q), 3))
    for i in range(6):
        pos = pos + np.einsum("njk,nk->nj", rot, joint_offsets[:, i])
        rot = rot @ joint_rots[:, i]
    poses = np.broadcast_to(np.eye(4), (len(q), 4, 4)).copy()
    poses[:, :3, :3] = rot @ HOME_EE[:3, :3]
    poses[:, :3, 3] = rot @ HOME_EE[:3, 3] + pos
    return poses


def matrix_to_rpy_many(r: np.ndarray) -> np.ndarray:
    """`matrix_to_rpy` of every rotation in ``r`` [N, 3, 3]: [N, 3]."""
    pitch = np.arcsin(np.clip(-r[:, 2, 0], -1.0, 1.0))
    gimbal = np.abs(np.cos(pitch)) < 1e-9
    roll = np.where(gimbal, 0.0, np.arctan2(r[:, 2, 1], r[:, 2, 2]))
    yaw = np.where(gimbal, np.arctan2(-r[:, 0, 1], r[:, 1, 1]), np.arctan2(r[:, 1, 0], r[:, 0, 0]))
    return np.stack([roll, pitch, yaw], axis=1)


def fk_reference(q6: np.ndarray) -> np.ndarray:
    """fk written literally as exp([S1] q1) ... exp([S6] q6) M, to check the fast version against."""
    t = np.eye(4)
    for screw, theta in zip(SCREW_AXES, np.asarray(q6, dtype=float)):
        t = t @ screw_exp(screw, theta)
    return t @ HOME_EE


def geometric_jacobian(q6: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Jacobian (6x6) mapping joint rates to [linear velocity of the ee point; angular
    velocity], both in the base frame, and fk(q6)."""
    axes, points, pose = _chain(q6)
    jac = np.empty((6, 6))
    lever = pose[:3, 3] - points
    # axes x lever, row by row (np.cross has a large fixed cost for 6x3 inputs)
    jac[0] = axes[:, 1] * lever[:, 2] - axes[:, 2] * lever[:, 1]
    jac[1] = axes[:, 2] * lever[:, 0] - axes[:, 0] * lever[:, 2]
    jac[2] = axes[:, 0] * lever[:, 1] - axes[:, 1] * lever[:, 0]
    jac[3:] = axes.T
    return jac, pose


def rotation_log(r: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle) of a rotation matrix."""
    cos = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    if angle < 1e-9:
        return np.zeros(3)
    if np.pi - angle < 1e-6:
        # near pi the antisymmetric part vanishes; (R + I) / 2 = n n^T gives the axis
        outer = (r + np.eye(3)) / 2.0
        i = int(np.argmax(np.diag(outer)))
        return outer[:, i] / np.sqrt(outer[i, i]) * angle
    w = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    return w * angle / (2.0 * np.sin(angle))


def pose_error(current: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[position error; rotation-vector error], both in the base frame."""
    return np.concatenate([target[:3, 3] - current[:3, 3],
                           rotation_log(target[:3, :3] @ current[:3, :3].T)])


def ik(target: np.ndarray, q_init: np.ndarray, *, max_iterations: int = 60,
       position_tolerance: float = 1e-3, orientation_tolerance: float = 1e-2,
       damping: float = 0.05, orientation_weight: float = 0.3,
       max_joint_step: float = 0.3) -> tuple[np.ndarray, bool]:
    """Damped-least-squares IK for the pose ``target`` (4x4), starting at ``q_init``.

    Returns ``(q6, success)``; ``q6`` always lies within JOINT_LIMITS, and is the best
    attempt (smallest weighted error) when ``success`` is False (target out of reach).
    ``orientation_weight`` (m per rad) trades orientation against position error.
    """
    weights = np.array([1.0, 1.0, 1.0, orientation_weight, orientation_weight, orientation_weight])
    q = clip_to_limits(q_init)
    best_q, best_cost = q, np.inf
    for _ in range(max_iterations):
        jac, pose = geometric_jacobian(q)
        err = pose_error(pose, target)
        if np.linalg.norm(err[:3]) < position_tolerance and np.linalg.norm(err[3:]) < orientation_tolerance:
            return q, True
        cost = np.linalg.norm(err * weights)
        if cost < best_cost:
            best_q, best_cost = q, cost
        jw = jac * weights[:, None]
        step = jw.T @ np.linalg.solve(jw @ jw.T + damping ** 2 * np.eye(6), err * weights)
        step *= min(1.0, max_joint_step / (np.abs(step).max() + 1e-12))
        q_next = clip_to_limits(q + step)
        if np.abs(q_next - q).max() < 1e-6:  # stuck (unreachable or at a limit): best effort
            break
        q = q_next
    err = pose_error(fk(q), target)
    if np.linalg.norm(err[:3]) < position_tolerance and np.linalg.norm(err[3:]) < orientation_tolerance:
        return q, True
    if np.linalg.norm(err * weights) < best_cost:
        best_q = q
    return best_q, False


def rpy_to_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def matrix_to_rpy(r: np.ndarray) -> np.ndarray:
    """Inverse of rpy_to_matrix, pitch in [-pi/2, pi/2]; at pitch = +-pi/2 roll is set to 0."""
    pitch = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    if abs(np.cos(pitch)) < 1e-9:
        return np.array([0.0, pitch, np.arctan2(-r[0, 1], r[1, 1])])
    return np.array([np.arctan2(r[2, 1], r[2, 2]), pitch, np.arctan2(r[1, 0], r[0, 0])])


def pose_to_xyzrpy(t: np.ndarray) -> np.ndarray:
    """4x4 pose -> [x, y, z, roll, pitch, yaw]."""
    return np.concatenate([t[:3, 3], matrix_to_rpy(t[:3, :3])])


def xyzrpy_to_pose(xyzrpy: np.ndarray) -> np.ndarray:
    """[x, y, z, roll, pitch, yaw] -> 4x4 pose."""
    t = np.eye(4)
    t[:3, :3] = rpy_to_matrix(*xyzrpy[3:6])
    t[:3, 3] = xyzrpy[:3]
    return t
