"""arm_node's ``interbotix`` backend: the Interbotix Python API in a child process.

Why a child process: the API owns rclpy in ways that cannot share arm_node's process.
Read from Interbotix/interbotix_ros_toolboxes (``interbotix_xs_modules/xs_robot/``):
- older generation (branch ``galactic``, and ``humble`` before the 2024 "Changes to
  Python-ROS 2 API"): ``InterbotixRobotXSCore.__init__`` calls ``rclpy.init()``
  unconditionally (raises where rclpy is already up), ``InterbotixManipulatorXS`` spins
  its own thread (``start_on_init=True``) and ``shutdown()`` calls ``rclpy.shutdown()``;
- newer generation (``humble``, ``iron``, ``jazzy``, ``rolling`` today): a global node spun by
  ``robot_startup()`` and a ``robot_shutdown()`` that calls ``rclpy.shutdown()`` on the
  whole process.
So the API runs in a process of its own (multiprocessing spawn: a fresh interpreter, its
own rclpy context, its own process group so a terminal Ctrl-C reaches arm_node only) and
arm_node talks to it over a pipe. Whatever the API does to rclpy stays in that process.

Other upstream behaviour this backend handles:
- ``arm.set_joint_positions`` returns False and does nothing when a target is outside the
  joint limits or ``|target - last command| / moving_time`` exceeds a joint's velocity
  limit; the refusal comes back to arm_node, which rejects the action and holds.
- a ``moving_time`` / ``accel_time`` that differs from the last one makes
  ``set_joint_positions`` write the Profile_Velocity / Profile_Acceleration registers
  (service calls) inside the call, and the constructor never writes them (it compares
  against its own defaults). So the registers are written here once at start-up, and every
  control command passes no timing: no register writes in the control loop. Only go_home
  (a longer move) changes them, and the next command after it puts them back.
- a command past its deadline (half the time arm_node waits for the answer) when the API
  would publish it is refused (stale): arm_node has given up on it and held the arm.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import time
from typing import Sequence

from crl_ros.learning.gripper import snap_gripper

ARM_GROUP = "arm"
GRIPPER_NAME = "gripper"
TIMING_WRITE_TIMEOUT_S = 2.0  # the xs_sdk's answers to the two register writes
UPSTREAM_ROUNDING_RAD = 0.001  # upstream truncates targets to 1 mrad before its speed check


def accel_time_for(moving_time: float) -> float:
    # A quarter of the move accelerating and a quarter decelerating (upstream requires
    # accel_time <= moving_time / 2).
    return moving_time / 4


class InterbotixBackend:
    """arm_node's side: starts the API process and sends it commands, one reply each."""

    def __init__(self, robot_model: str, moving_time: float, reply_timeout_s: float = 0.2,
                 startup_timeout_s: float = 60.0):
        self.reply_timeout = float(reply_timeout_s)
        self.moving_time = self.last_seconds = float(moving_time)
        self.seq = 0
        spawn = multiprocessing.get_context("spawn")
        self.conn, child_conn = spawn.Pipe()
        config = dict(robot_model=robot_model, moving_time=float(moving_time))
        self.process = spawn.Process(target=serve, args=(child_conn, config), name="interbotix_api", daemon=True)
        self.process.start()
        child_conn.close()
        reply = self._receive(lambda r: r[0] in ("ready", "failed"), startup_timeout_s)
        if reply is None or reply[0] == "failed":
            exited = not self.process.is_alive()
            self._stop_process()
            if reply is None and exited:
                raise RuntimeError(f"the Interbotix API process exited (code {self.process.exitcode}) before it "
                                   "was ready; its output is above")
            if reply is None:
                raise RuntimeError(f"the Interbotix API did not come up within {startup_timeout_s:.0f}s: is the "
                                   f"xs_sdk running under /{robot_model}? (ros2 launch interbotix_xsarm_control "
                                   f"xsarm_control.launch.py robot_model:={robot_model})")
            error, message = reply[1], reply[2]
            raise (ImportError if error == "ImportError" else RuntimeError)(message)
        self.generation = reply[1]["generation"]

    def send(self, q6: Sequence[float], gripper01: float | None, seconds: float) -> tuple[bool, str]:
        """Move to q6 over ``seconds``; (False, why) when the API refused or did not answer."""
        gripper_open = None if gripper01 is None else bool(snap_gripper(float(gripper01)) == 1.0)
        return self._request("move", float(seconds), [float(v) for v in q6], gripper_open, float(seconds))

    def hold(self, q6: Sequence[float]) -> tuple[bool, str]:
        """Command the measured position (the arm stops where it is)."""
        return self._request("hold", self.moving_time, [float(v) for v in q6])

    def close(self) -> None:
        if self.process.is_alive():
            try:
                self.conn.send(("close", self.seq + 1, time.monotonic()))
            except OSError:
                pass
        self._stop_process(grace_s=15.0)

    def _request(self, kind: str, seconds: float, *args) -> tuple[bool, str]:
        if not self.process.is_alive():
            return False, f"the Interbotix API process has exited (code {self.process.exitcode})"
        timeout = self.reply_timeout
        if abs(seconds - self.last_seconds) > 1e-6:  # go_home and the command after it write the registers first
            timeout += TIMING_WRITE_TIMEOUT_S
        self.last_seconds = seconds
        self.seq += 1
        seq = self.seq
        # The API process refuses the command once half the wait is over, so a command reported
        # here as unanswered (and held for) is not carried out later.
        deadline = time.monotonic() + timeout / 2
        try:
            self.conn.send((kind, seq, deadline, *args))
        except OSError as exc:
            return False, f"the Interbotix API process is gone: {exc}"
        # Replies to earlier requests that arrived after their timeout are skipped.
        reply = self._receive(lambda r: r[0] == "done" and r[1] == seq, timeout)
        if reply is None:
            return False, f"the Interbotix API did not answer within {timeout:.2f}s"
        return reply[2], reply[3]

    def _receive(self, wanted, timeout: float):
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                if not self.conn.poll(left):
                    return None
                reply = self.conn.recv()
            except (EOFError, OSError):  # the process exited
                return None
            if wanted(reply):
                return reply
        return None

    def _stop_process(self, grace_s: float = 2.0) -> None:
        self.process.join(grace_s)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


# --- the API process ------------------------------------------------------------------------

def serve(conn, config: dict) -> None:
    """The child process: start the API, answer commands until close or arm_node goes away."""
    os.setpgrp()  # a terminal Ctrl-C goes to arm_node, which then closes this process
    try:
        api = ApiServer(**config)
    except ImportError as exc:
        conn.send(("failed", "ImportError", "backend 'interbotix' needs the Interbotix ROS 2 packages "
                   f"(interbotix_xs_toolbox, interbotix_xs_msgs) from the robot computer's workspace: {exc}"))
        return
    except BaseException as exc:  # upstream calls sys.exit(1) when it cannot find the xs_sdk
        conn.send(("failed", type(exc).__name__, f"the Interbotix API failed to start: {type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", {"generation": api.generation}))
    try:
        while True:
            try:
                kind, seq, deadline, *args = conn.recv()
            except EOFError:  # arm_node exited without closing us
                break
            if kind == "close":
                break
            try:
                ok, why = getattr(api, kind)(deadline, *args)
            except Exception as exc:  # report it; arm_node rejects and holds
                ok, why = False, f"Interbotix API error: {type(exc).__name__}: {exc}"
            conn.send(("done", seq, ok, why))
    finally:
        try:
            api.shutdown()
        except Exception as exc:  # e.g. rclpy was already shut down inside the API: say so, exit
            print(f"[interbotix_api] shutdown: {type(exc).__name__}: {exc}", file=sys.stderr)


class ApiServer:
    """The Interbotix API as arm_node uses it, for either generation."""

    def __init__(self, robot_model: str, moving_time: float):
        from interbotix_xs_modules.xs_robot.arm import InterbotixManipulatorXS

        try:  # the newer generation has the global-node functions
            from interbotix_common_modules.common_robot import robot as common_robot
        except ImportError:
            common_robot = None
        self.generation = "older" if common_robot is None else "newer"
        self.common_robot = common_robot
        self.control_timing = (moving_time, accel_time_for(moving_time))
        arm_args = dict(robot_model=robot_model, group_name=ARM_GROUP, gripper_name=GRIPPER_NAME,
                        moving_time=self.control_timing[0], accel_time=self.control_timing[1])
        if common_robot is None:
            self.bot = InterbotixManipulatorXS(**arm_args, start_on_init=True)  # rclpy.init + spin thread
        else:
            self.bot = InterbotixManipulatorXS(**arm_args)
            common_robot.robot_startup()  # spins the global node in a thread
        self.arm = self.bot.arm
        self.timing = None
        self.set_timing(*self.control_timing)
        self.gripper_open: bool | None = None

    def set_timing(self, moving_time: float, accel_time: float, timeout_s: float = TIMING_WRITE_TIMEOUT_S) -> None:
        """Write Profile_Velocity / Profile_Acceleration and wait for the xs_sdk's answers.

        Through the core's service client rather than ``arm.set_trajectory_time``: the older
        generation waits only 0.1 s for the answer and reports nothing, the newer one waits
        forever. The arm's own moving_time / accel_time are updated so that its speed check
        uses the time the motors now run on, and its calls write no registers."""
        from interbotix_xs_msgs.srv import RegisterValues

        futures = [self.arm.core.srv_set_reg.call_async(RegisterValues.Request(
            cmd_type="group", name=self.arm.group_name, reg=reg, value=int(round(seconds * 1000))))
            for reg, seconds in (("Profile_Velocity", moving_time), ("Profile_Acceleration", accel_time))]
        deadline = time.monotonic() + timeout_s
        while not all(f.done() for f in futures):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the xs_sdk did not answer set_motor_registers within {timeout_s:.0f}s")
            time.sleep(0.005)  # the API's spin thread completes the futures
        self.arm.moving_time, self.arm.accel_time = moving_time, accel_time
        self.timing = (moving_time, accel_time)

    @staticmethod
    def stale(deadline: float) -> str:
        late = time.monotonic() - deadline  # time.monotonic: one clock for every process on the machine
        return f"stale command ({late * 1000:.0f} ms past its deadline)" if late > 0 else ""

    def move(self, deadline: float, q6: list[float], gripper_open: bool | None, seconds: float) -> tuple[bool, str]:
        timing = self.control_timing
        if abs(seconds - self.control_timing[0]) > 1e-6:  # go_home: a longer move
            timing = (seconds, accel_time_for(seconds))
        if timing != self.timing:
            self.set_timing(*timing)
        if why := self.stale(deadline):
            return False, why
        q6 = self.inside_speed_check(q6)
        # No moving_time / accel_time: the registers already hold them.
        if not self.arm.set_joint_positions(q6, blocking=False):
            return False, "set_joint_positions refused the target: " + self.refusal_reason(q6)
        if gripper_open is not None and gripper_open != self.gripper_open:
            (self.bot.gripper.release if gripper_open else self.bot.gripper.grasp)(delay=0.0)
            self.gripper_open = gripper_open
        return True, ""

    def hold(self, deadline: float, q6: list[float]) -> tuple[bool, str]:
        # The measured position, published as the group command set_joint_positions would
        # send. Not through set_joint_positions: its speed check compares with the last
        # *command*, which a hold after a long move (or a lagging arm) may be far from,
        # although the target is where the arm already is.
        if self.timing != self.control_timing:
            self.set_timing(*self.control_timing)
        if why := self.stale(deadline):
            return False, why
        self.arm.core.robot_write_commands(self.arm.group_name, q6)
        self.arm.joint_commands = list(q6)
        return True, ""

    def inside_speed_check(self, q6: list[float]) -> list[float]:
        """Each joint's target kept 1 mrad inside the step upstream allows. arm_node already
        limits a step to the velocity limit times moving_time, but upstream truncates a target
        towards zero to 1 mrad *before* its speed check (int(x * 1000) / 1000), so a full-speed
        step towards zero could come out up to 1 mrad too long and be refused. Only a step that the
        rounding alone would push over the limit changes, by at most 1 mrad; a step over the limit is
        left to be refused."""
        info, moving_time = self.arm.group_info, float(self.arm.moving_time)
        kept = []
        for target, last, limit in zip(q6, self.arm.joint_commands, info.joint_velocity_limits):
            allowed, rounded = limit * moving_time, int(target * 1000) / 1000.0  # upstream's rounding
            if abs(target - last) > allowed + 1e-9 or abs(rounded - last) / moving_time <= limit:
                kept.append(float(target))  # refused as asked (over the limit), or passes as it is
                continue
            reach = max(allowed - UPSTREAM_ROUNDING_RAD, 0.0)
            kept.append(min(max(float(target), last - reach), last + reach))
        return kept

    def refusal_reason(self, q6: list[float]) -> str:
        """Which of upstream's two checks failed (its rounding: int(x * 1000) / 1000)."""
        info = self.arm.group_info
        reasons = []
        for i, (name, target, last) in enumerate(zip(info.joint_names, q6, self.arm.joint_commands)):
            theta = int(target * 1000) / 1000.0
            speed = abs(theta - last) / float(self.arm.moving_time)
            if not info.joint_lower_limits[i] <= theta <= info.joint_upper_limits[i]:
                reasons.append(f"{name} {theta:.3f} outside [{info.joint_lower_limits[i]:.3f}, "
                               f"{info.joint_upper_limits[i]:.3f}]")
            elif speed > info.joint_velocity_limits[i]:
                reasons.append(f"{name} would move at {speed:.2f} rad/s > {info.joint_velocity_limits[i]:.2f} "
                               f"(|target - last command| / moving_time {self.arm.moving_time:.2f}s)")
        return "; ".join(reasons) or "unknown"

    def shutdown(self) -> None:
        # rclpy.shutdown() inside: of this process's context only.
        if self.common_robot is None:
            self.bot.shutdown()
        else:
            self.common_robot.robot_shutdown()
