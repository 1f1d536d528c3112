"""WidowXSim: the MuJoCo WidowX 250 scene at the level of a robot driver and a camera.

Joint targets in, physics stepped, joint states and camera images out. The ROS sim_node
drives this class directly; the gymnasium env (crl_ros.sim.widowx) adds the 7-D action
convention on top.

Grasp assist (a documented simplification): MuJoCo friction grasps of a small cube with
position-controlled fingers slip easily, so while the gripper is commanded closed
(opening < 0.5) and both finger pads touch the cube, the cube is welded to the gripper
(equality ``grasp_assist``). The weld is released as soon as the gripper opens. The
fingers still close on the cube physically; only the holding force is idealised.
"""
from __future__ import annotations

import os

import mujoco  # crl_ros.sim (imported first, as the package) has chosen the headless backend
import numpy as np

from crl_ros.robot import camera as camera_pipeline
from crl_ros.robot import kinematics
from crl_ros.sim import shifts as shift_defs
from crl_ros.sim import tasks as task_defs
from crl_ros.sim import widowx_model as model

# single-threaded software rasterisation: faster for small images, and workers run in parallel
os.environ.setdefault("LP_NUM_THREADS", "0")

SUPERSAMPLE = 4              # observations: render at 4x and area-resize, like a real camera frame
GRIPPER_CLOSED_BELOW = 0.5   # commanded opening under which the gripper counts as closing
SETTLE_SECONDS = 0.1         # physics run after placing a scene, so objects come to rest
GRASP_CHECK_SECONDS = 0.04   # how often (simulated) the grasp assist looks for a held cube
GRASP_CHECK_RADIUS = 0.05    # m: contacts are scanned only with the cube this close to the pads


class WidowXSim:
    """The simulated arm, scene and camera. Angles in rad, lengths in m, gripper in [0, 1] (1 = open)."""

    JOINT_STATE_NAMES = kinematics.JOINT_STATE_NAMES

    #: the camera that scene shifts move: the policy camera
    SHIFTED_CAMERA = "overhead"

    def __init__(self, task: str = "reach", max_render_size: int = 640, distractors: int = 0):
        """``distractors``: distractor slots to build (see `set_shift`); 0 builds today's scene."""
        self.model = mujoco.MjModel.from_xml_string(model.build_mjcf(max_render_size, distractors))
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._arm_qpos = np.array([m.joint(n).qposadr[0] for n in kinematics.JOINT_NAMES])
        self._arm_dof = np.array([m.joint(n).dofadr[0] for n in kinematics.JOINT_NAMES])
        self._finger_qpos = np.array([m.joint(n).qposadr[0] for n in ("left_finger", "right_finger")])
        self._arm_ctrl = np.array([m.actuator(n).id for n in kinematics.JOINT_NAMES])
        self._finger_ctrl = np.array([m.actuator(n).id for n in ("left_finger", "right_finger")])
        self._drawer_qpos = m.joint("drawer_slide").qposadr[0]
        self._block_qpos = m.joint("block").qposadr[0]
        self._object_qpos = m.joint("object").qposadr[0]
        self._object_body = m.body("object").id
        self._gripper_body = m.body("gripper_link").id
        self._ee_site = m.site("ee_gripper_link").id
        self._weld = m.equality("grasp_assist").id
        self._finger_geoms = {m.geom("left_finger").id, m.geom("right_finger").id}
        self._object_geom = m.geom("object").id
        self._between_fingers = np.array([model.FINGER_CENTER_X, 0.0, 0.0])  # in the gripper_link frame
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._gripper_command = 1.0
        self._unsimulated_seconds = 0.0
        self.task = task_defs.get_task(task)
        self.start_scene, self.goal_scene = task_defs.Scene(), task_defs.Scene()
        self._goal_images: dict[tuple[int, int, str], np.ndarray] = {}
        self._nominal = self._nominal_looks()
        self.shift: shift_defs.ShiftDraw | None = None
        self._noise_rng = np.random.default_rng(0)
        self.reset(task, seed=0)

    # -- episodes -------------------------------------------------------------------------
    def reset(self, task: str | None = None, seed: int | None = None) -> None:
        """Draw the start and goal scenes of ``task`` (default: the current one) from ``seed``
        and place the start scene. Same task and seed, same start, goal and images."""
        if task is not None:
            self.task = task_defs.get_task(task)
        rng = np.random.default_rng(seed)
        self.start_scene, self.goal_scene = self.task.sample(rng)
        self._goal_images.clear()
        self.set_scene(self.start_scene)

    def set_scene(self, scene: task_defs.Scene, settle: bool = True) -> None:
        """Place arm, gripper, block, object and drawer as ``scene`` says, at rest."""
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        self._unsimulated_seconds = 0.0
        q6 = self.solve_arm(scene.ee_xyz)
        d.qpos[self._arm_qpos] = q6
        d.qpos[self._finger_qpos] = _finger_position(scene.gripper)
        d.qpos[self._drawer_qpos] = scene.drawer
        d.qpos[self._block_qpos:self._block_qpos + 7] = [*scene.block_xy, model.BLOCK_HALF, 1, 0, 0, 0]
        d.qpos[self._object_qpos:self._object_qpos + 7] = [*scene.object_xyz, 1, 0, 0, 0]
        d.eq_active[self._weld] = 0
        self.set_joint_targets(q6, scene.gripper)
        mujoco.mj_forward(m, d)
        if settle:
            self.step(SETTLE_SECONDS)

    @staticmethod
    def solve_arm(ee_xyz: np.ndarray, q_init: np.ndarray | None = None) -> np.ndarray:
        """Joint angles putting the ee at ``ee_xyz`` pointing down (TOP_DOWN_RPY)."""
        target = kinematics.xyzrpy_to_pose(np.concatenate([ee_xyz, task_defs.TOP_DOWN_RPY]))
        seed = np.array([0.0, 0.0, 0.5, 0.0, 1.0, 0.0]) if q_init is None else q_init
        q6, ok = kinematics.ik(target, seed, max_iterations=200)
        if not ok:
            raise ValueError(f"ee position {ee_xyz} is out of the arm's reach pointing down")
        return q6

    # -- driver-level interface -------------------------------------------------------------
    def set_joint_targets(self, q6: np.ndarray, gripper01: float) -> None:
        """Position targets for the six arm joints (clipped to limits) and the gripper opening."""
        q6 = kinematics.clip_to_limits(q6)
        self.data.ctrl[self._arm_ctrl] = q6
        self._gripper_command = float(np.clip(gripper01, 0.0, 1.0))
        self.data.ctrl[self._finger_ctrl] = _finger_position(self._gripper_command)
        if self._gripper_command >= GRIPPER_CLOSED_BELOW:
            self.data.eq_active[self._weld] = 0

    def set_arm_joints(self, q6: np.ndarray) -> None:
        """Place the arm at ``q6`` (clipped to limits) at rest, holding it there (targets = ``q6``)."""
        q6 = kinematics.clip_to_limits(q6)
        self.data.qpos[self._arm_qpos] = q6
        self.data.qvel[self._arm_dof] = 0.0
        self.data.ctrl[self._arm_ctrl] = q6
        mujoco.mj_forward(self.model, self.data)

    def step(self, dt: float) -> None:
        """Advance the physics by ``dt`` seconds. Time is kept in whole physics timesteps
        (model.opt.timestep); a remainder carries over to the next call, so callers at any
        rate (a ROS timer) keep simulated time in step with theirs."""
        timestep = self.model.opt.timestep
        self._unsimulated_seconds += dt
        steps_left = int(self._unsimulated_seconds / timestep + 1e-9)
        self._unsimulated_seconds -= steps_left * timestep
        chunk = max(1, int(round(GRASP_CHECK_SECONDS / timestep)))
        while steps_left > 0:
            n = min(chunk, steps_left)
            mujoco.mj_step(self.model, self.data, nstep=n)
            steps_left -= n
            if self._gripper_command < GRIPPER_CLOSED_BELOW and not self.data.eq_active[self._weld]:
                self._try_grasp()

    @property
    def time(self) -> float:
        """Simulated seconds since the last reset."""
        return float(self.data.time)

    def joint_state(self) -> tuple[list[str], np.ndarray]:
        """(JOINT_STATE_NAMES, positions): six arm joints (rad), the gripper opening in [0, 1]
        (stands in for the gripper motor angle) and the two finger positions (m, both positive)."""
        fingers = self.data.qpos[self._finger_qpos]
        return list(self.JOINT_STATE_NAMES), np.concatenate([self.arm_joints(), [self.gripper_opening()], fingers])

    def arm_joints(self) -> np.ndarray:
        return self.data.qpos[self._arm_qpos].copy()

    def gripper_opening(self) -> float:
        lo, hi = kinematics.FINGER_LIMITS
        return float((np.mean(self.data.qpos[self._finger_qpos]) - lo) / (hi - lo))

    def ee_pose(self) -> np.ndarray:
        """4x4 pose of ee_gripper_link in base_link (equals kinematics.fk(arm_joints()))."""
        pose = np.eye(4)
        pose[:3, :3] = self.data.site_xmat[self._ee_site].reshape(3, 3)
        pose[:3, 3] = self.data.site_xpos[self._ee_site]
        return pose

    # -- scene readings ---------------------------------------------------------------------
    def block_xy(self) -> np.ndarray:
        return self.data.qpos[self._block_qpos:self._block_qpos + 2].copy()

    def object_xyz(self) -> np.ndarray:
        return self.data.qpos[self._object_qpos:self._object_qpos + 3].copy()

    def drawer_opening(self) -> float:
        return float(self.data.qpos[self._drawer_qpos])

    def holding_object(self) -> bool:
        return bool(self.data.eq_active[self._weld])

    def reading(self) -> task_defs.SceneReading:
        return task_defs.SceneReading(self.ee_pose()[:3, 3], self.block_xy(), self.object_xyz(),
                                      self.drawer_opening(), self.holding_object())

    def success(self) -> bool:
        """The current task's success check on the current state."""
        return self.task.success(self.reading(), self.goal_scene)

    # -- shifts -----------------------------------------------------------------------------
    def set_shift(self, draw: shift_defs.ShiftDraw | None) -> None:
        """Apply one episode's shift (crl_ros.sim.shifts) to the scene and the camera pipeline,
        or with None restore the nominal world exactly. Scene-level parts change the model
        (policy camera pose and field of view, lights, table colour, distractor cups); the
        image-level parts act in `camera_image`. Physics is untouched: distractors collide
        with nothing. Goal images already rendered are dropped."""
        m, nominal = self.model, self._nominal
        self.shift = draw
        draw = draw or shift_defs.ShiftDraw()
        if len(draw.distractors) > len(nominal["distractors"]):
            raise ValueError(f"{len(draw.distractors)} distractors asked for, but this scene was built with "
                             f"{len(nominal['distractors'])} distractor slots (WidowXSim(distractors=N))")
        cam = nominal["camera"]
        m.cam_pos[cam] = nominal["cam_pos"] + draw.camera_offset
        # products of unit quaternions (identity turns give the nominal quaternion exactly)
        m.cam_quat[cam] = shift_defs.quat_mul(shift_defs.quat_mul(draw.camera_turn_world, nominal["cam_quat"]),
                                              draw.camera_turn_local)
        m.cam_fovy[cam] = nominal["cam_fovy"] + draw.fov_delta
        m.light_diffuse[:] = nominal["light_diffuse"] * draw.light_scale
        m.vis.headlight.ambient[:] = nominal["head_ambient"] * draw.light_scale
        m.vis.headlight.diffuse[:] = nominal["head_diffuse"] * draw.light_scale
        m.light_dir[:] = nominal["light_dir"]
        if draw.light_tilt_deg:  # the ceiling light points straight down; tilt it towards the azimuth
            tilt, azimuth = np.radians(draw.light_tilt_deg), draw.light_azimuth
            m.light_dir[:] = [np.sin(tilt) * np.cos(azimuth), np.sin(tilt) * np.sin(azimuth), -np.cos(tilt)]
        m.geom_rgba[nominal["table"], :3] = np.clip(nominal["table_rgb"] + draw.table_rgb_delta, 0.0, 1.0)
        for slot, (body, geom) in enumerate(nominal["distractors"]):
            if slot < len(draw.distractors):
                x, y, radius, half_height, *rgb = draw.distractors[slot]
                m.body_pos[body] = [x, y, half_height]
                m.geom_size[geom, :2] = [radius, half_height]
                m.geom_rgba[geom, :3] = rgb
            else:
                m.body_pos[body] = model.DISTRACTOR_PARKED
        self._noise_rng = np.random.default_rng([draw.seed & 0xFFFFFFFF, 1])
        self._goal_images.clear()
        mujoco.mj_forward(m, self.data)

    def _nominal_looks(self) -> dict:
        """What `set_shift` changes, as built: restored exactly by ``set_shift(None)``."""
        m = self.model
        cam = m.camera(self.SHIFTED_CAMERA).id
        slots = []  # (body, geom) of each distractor slot the scene was built with
        while mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"distractor_{len(slots)}") >= 0:
            name = f"distractor_{len(slots)}"
            slots.append((m.body(name).id, m.geom(name).id))
        return {"camera": cam, "cam_pos": m.cam_pos[cam].copy(), "cam_quat": m.cam_quat[cam].copy(),
                "cam_fovy": float(m.cam_fovy[cam]), "light_diffuse": m.light_diffuse.copy(),
                "light_dir": m.light_dir.copy(),
                "head_ambient": m.vis.headlight.ambient.copy(), "head_diffuse": m.vis.headlight.diffuse.copy(),
                "table": m.geom("table").id, "table_rgb": m.geom_rgba[m.geom("table").id, :3].copy(),
                "distractors": slots}

    # -- images -----------------------------------------------------------------------------
    def render(self, width: int = 48, height: int = 48, camera: str = "overhead") -> np.ndarray:
        """uint8 [height, width, 3] image from a named camera ("overhead" is the policy camera)."""
        key = (int(width), int(height))
        renderer = self._renderers.get(key)
        if renderer is None:
            renderer = mujoco.Renderer(self.model, height=key[1], width=key[0])
            for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                         mujoco.mjtRndFlag.mjRND_SKYBOX, mujoco.mjtRndFlag.mjRND_FOG):
                renderer.scene.flags[flag] = 0
            self._renderers[key] = renderer
        renderer.update_scene(self.data, camera=camera)
        return renderer.render().copy()

    def camera_image(self, size: int, camera: str = "overhead", supersample: int = SUPERSAMPLE) -> np.ndarray:
        """A policy observation of ``size`` x ``size``: rendered at ``supersample`` times the size
        and area-resized by the camera pipeline's own function, so it matches what camera_node
        makes of a full camera frame (mean abs difference ~0.4 of 255 at 4x; a direct small
        render, supersample=1, is aliased and differs by ~4.4)."""
        big = self.render(size * supersample, size * supersample, camera)
        if self.shift is not None and self.shift.changes_image:
            return shift_defs.shifted_observation(big, size, self.shift, self._noise_rng, supersample)
        return camera_pipeline.preprocess_image(big, crop=None, size=(size, size))

    def goal_image(self, width: int = 48, height: int = 48, camera: str = "overhead",
                   observation: bool = False, supersample: int = SUPERSAMPLE, nominal: bool = False) -> np.ndarray:
        """Render of the goal scene (the simulator's state is left untouched); with
        ``observation`` a square policy observation like `camera_image` (size = width).
        With ``nominal`` it is rendered in the nominal world, without the current shift
        (a goal image captured before the camera was moved)."""
        key = (int(width), int(height), camera, observation, supersample, nominal)
        if key not in self._goal_images:
            saved, shift, noise_rng = self._save_state(), self.shift, self._noise_rng
            if nominal and shift is not None:
                self.set_shift(None)
            self.set_scene(self.goal_scene, settle=False)
            image = (self.camera_image(width, camera, supersample) if observation
                     else self.render(width, height, camera))
            if nominal and shift is not None:
                self.set_shift(shift)  # clears the goal cache: the image is stored after
                self._noise_rng = noise_rng  # the observations' noise goes on where it was
            self._goal_images[key] = image
            self._restore_state(saved)
        return self._goal_images[key].copy()

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    # -- internals --------------------------------------------------------------------------
    def _save_state(self) -> tuple:
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        state = np.empty(mujoco.mj_stateSize(self.model, spec))
        mujoco.mj_getState(self.model, self.data, state, spec)
        return state, self._gripper_command

    def _restore_state(self, saved: tuple) -> None:
        state, self._gripper_command = saved
        mujoco.mj_setState(self.model, self.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_forward(self.model, self.data)

    def _try_grasp(self) -> None:
        """Weld the cube to the gripper if both closing finger pads touch it."""
        d = self.data
        grip_rot = d.xmat[self._gripper_body].reshape(3, 3)
        rel_pos = grip_rot.T @ (d.xpos[self._object_body] - d.xpos[self._gripper_body])
        if np.linalg.norm(rel_pos - self._between_fingers) > GRASP_CHECK_RADIUS:
            return  # the cube is nowhere near the fingers: skip the contact scan
        touching = set()
        for contact in d.contact[:d.ncon]:
            pair = {contact.geom1, contact.geom2}
            if self._object_geom in pair:
                touching |= pair & self._finger_geoms
        if touching != self._finger_geoms:
            return
        # relative pose of the cube in the gripper frame, kept by the weld from now on
        grip_quat_inv = np.empty(4)
        mujoco.mju_negQuat(grip_quat_inv, d.xquat[self._gripper_body])
        rel_quat = np.empty(4)
        mujoco.mju_mulQuat(rel_quat, grip_quat_inv, d.xquat[self._object_body])
        eq_data = self.model.eq_data[self._weld]
        eq_data[0:3] = 0.0          # anchor on the cube's origin
        eq_data[3:6] = rel_pos
        eq_data[6:10] = rel_quat
        eq_data[10] = 1.0           # torque scale
        d.eq_active[self._weld] = 1


def _finger_position(gripper01: float) -> float:
    lo, hi = kinematics.FINGER_LIMITS
    return lo + float(np.clip(gripper01, 0.0, 1.0)) * (hi - lo)

