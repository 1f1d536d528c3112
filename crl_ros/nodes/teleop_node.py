"""teleop_node: a gamepad drives the arm through ``action``, to record demonstrations.

In: ``joy`` (sensor_msgs/Joy, from the ROS ``joy`` package's joy_node). Out: ``action``
(std_msgs/Float32MultiArray, crl_ros layout, see nodes/common.py) every 1/``rate_hz`` s
while the deadman button is held: the sticks and D-pad (``gamepad`` layout,
crl_ros.robot.teleop.GAMEPADS, any index overridable) past the ``dead_zone``, times the
speed level, times the per-step bounds, with the gripper's absolute opening (the close
and open buttons set it, while the deadman is held, and it stays). Nothing is published
without a joy message, with one older than ``joy_timeout_s`` (by arrival and by header
stamp; joy_node repeats its state at 20 Hz) or with the deadman released, so arm_node's
watchdog holds the arm. Speed buttons step through ``speed_levels``; the episode buttons
call the recorder's ``start_episode`` / ``end_episode`` (std_srvs/Trigger) and log the
reply.

KeyboardTeleop (``crl teleop``) is the same thing driven from a terminal's keys.
"""
from __future__ import annotations

import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Joy
from std_msgs.msg import Float32MultiArray
from std_srvs.srv import Trigger

from crl_ros.nodes import common
from crl_ros.robot import teleop
from crl_ros.robot.actions import CONTROL_RATE_HZ

#: shared by the gamepad and the keyboard teleop (both read config/teleop_node.yaml)
COMMON_PARAMETERS = [
    ("rate_hz", CONTROL_RATE_HZ, "actions per second (the control rate the data is recorded at)"),
    ("speed_levels", [0.25, 0.5, 1.0], "speeds to step through, as fractions of the per-step bounds "
                                       "(0.05 m, 0.25 rad per step)"),
    ("initial_speed_level", 1, "index into speed_levels at start"),
    ("initial_gripper", teleop.OPEN, "gripper opening at start: 1 = open, 0 = closed"),
    ("start_episode_service", "start_episode", "recorder service the start button calls"),
    ("end_episode_service", "end_episode", "recorder service the end button calls"),
]
PARAMETERS = [
    ("gamepad", "xbox", f"joy_node layout: {' | '.join(teleop.GAMEPADS)}"),
    ("dead_zone", 0.1, "stick deflection (0..1) that still reads 0"),
    ("joy_timeout_s", 0.5, "no action when the newest joy message is older than this"),
    *[(f"axis_{name}", -1, f"joy axis for {name} (-1 = the gamepad's)") for name in teleop.MOTIONS],
    *[(f"scale_{name}", 1.0, f"factor on {name} (-1 flips it, 0 turns it off)") for name in teleop.MOTIONS],
    *[(f"button_{name}", -1, f"joy button for {name} (-1 = the gamepad's)") for name in teleop.BUTTONS],
    *COMMON_PARAMETERS,
]
EPISODE_REPLY_TIMEOUT_S = 5.0


class TeleopBase(Node):
    """What both teleops share: the action publisher and the control timer, speed, gripper
    and the episode service calls. Subclasses say what the motion is (``motion()``, None =
    publish nothing) and call ``command()`` for their buttons or keys."""

    def __init__(self, name: str, specs, **kwargs):
        super().__init__(name, **kwargs)
        self.params = p = common.declare_parameters(self, specs, "teleop_node")
        self.speed = teleop.Speed(p["speed_levels"], int(p["initial_speed_level"]))
        self.gripper = float(np.clip(p["initial_gripper"], teleop.CLOSED, teleop.OPEN))
        if not float(p["rate_hz"]) > 0:
            raise ValueError(f"{name}: rate_hz must be > 0, got {p['rate_hz']}")
        self.action_pub = self.create_publisher(Float32MultiArray, "action", common.reliable_qos())
        self.episode_clients = {"start_episode": self.create_client(Trigger, p["start_episode_service"]),
                                "end_episode": self.create_client(Trigger, p["end_episode_service"])}
        self.pending: list[tuple[str, float, object]] = []   # (service, sent at, future)
        self.create_timer(1.0 / float(p["rate_hz"]), self.tick)

    def motion(self) -> np.ndarray | None:
        raise NotImplementedError

    def tick(self) -> None:
        self._expire_pending()
        motion = self.motion()
        if motion is not None:
            self.action_pub.publish(common.action_msg(teleop.teleop_action(motion, self.speed.value, self.gripper)))

    def command(self, name: str) -> None:
        """A button or key: gripper_close/open, speed_up/down, start_episode/end_episode."""
        if name in ("gripper_close", "gripper_open"):
            self.gripper = teleop.CLOSED if name == "gripper_close" else teleop.OPEN
        elif name in ("speed_up", "speed_down"):
            self.speed.step(1 if name == "speed_up" else -1)
            self.get_logger().info(f"speed {self.speed.value:g} of the per-step bounds")
        elif name in self.episode_clients:
            self._call_episode(name)

    def _call_episode(self, name: str) -> None:
        client = self.episode_clients[name]
        if not client.service_is_ready():
            self.get_logger().warning(f"{client.srv_name} is not available: is recorder_node running?")
            return
        future = client.call_async(Trigger.Request())
        self.pending.append((name, time.monotonic(), future))
        future.add_done_callback(lambda f: self._episode_reply(name, f))

    def _episode_reply(self, name: str, future) -> None:
        self.pending = [entry for entry in self.pending if entry[2] is not future]
        reply = future.result()
        if reply is None:
            self.get_logger().error(f"{name}: no reply")
        elif reply.success:
            self.get_logger().info(f"{name}: {reply.message}")
        else:
            self.get_logger().warning(f"{name} refused: {reply.message}")

    def _expire_pending(self) -> None:
        now = time.monotonic()
        for name, sent, future in [e for e in self.pending if now - e[1] > EPISODE_REPLY_TIMEOUT_S]:
            self.episode_clients[name].remove_pending_request(future)
            self.pending.remove((name, sent, future))
            self.get_logger().error(f"{name}: no reply within {EPISODE_REPLY_TIMEOUT_S:g} s; check the recorder")


class TeleopNode(TeleopBase):
    def __init__(self, name: str = "teleop_node", **kwargs):
        super().__init__(name, PARAMETERS, **kwargs)
        p = self.params
        self.pad = teleop.gamepad(p["gamepad"]).with_overrides(
            axes={m: int(p[f"axis_{m}"]) for m in teleop.MOTIONS},
            scales={m: float(p[f"scale_{m}"]) for m in teleop.MOTIONS},
            buttons={b: int(p[f"button_{b}"]) for b in teleop.BUTTONS})
        self.dead_zone = float(p["dead_zone"])
        if not 0.0 <= self.dead_zone < 1.0:
            raise ValueError(f"teleop_node: dead_zone must be in [0, 1), got {self.dead_zone}")
        self.timeout_ns = int(float(p["joy_timeout_s"]) * 1e9)
        self.edges = teleop.ButtonEdges(self.pad)
        self.joy: Joy | None = None
        self.joy_received_ns = 0
        self.state = "no_joy"
        self.create_subscription(Joy, "joy", self.on_joy, common.reliable_qos())
        self.get_logger().info(f"gamepad {p['gamepad']} ({self.pad.description}); hold button "
                               f"{self.pad.buttons['deadman']} (deadman) to move")

    def _stamp_age_ns(self, msg: Joy) -> int:
        stamp = common.stamp_to_ns(msg.header.stamp)
        return self.get_clock().now().nanoseconds - stamp if stamp else 0

    def on_joy(self, msg: Joy) -> None:
        self.joy, self.joy_received_ns = msg, time.monotonic_ns()
        rising = self.edges.update(msg.buttons)
        if self._stamp_age_ns(msg) > self.timeout_ns:
            return   # an old message moves nothing and presses nothing
        for name in ("speed_up", "speed_down", "start_episode", "end_episode"):
            if name in rising:
                self.command(name)
        if teleop.pressed(msg.buttons, self.pad.buttons["deadman"]):
            for name in ("gripper_close", "gripper_open"):
                if teleop.pressed(msg.buttons, self.pad.buttons[name]):
                    self.command(name)
                    break

    def _why_not(self) -> str | None:
        msg = self.joy
        if msg is None:
            return "no_joy"
        if (time.monotonic_ns() - self.joy_received_ns > self.timeout_ns
                or self._stamp_age_ns(msg) > self.timeout_ns):
            return "stale"
        if not teleop.pressed(msg.buttons, self.pad.buttons["deadman"]):
            return "deadman_released"
        return None

    def motion(self) -> np.ndarray | None:
        reason = self._why_not()
        state = reason or "acted"
        if state != self.state:
            self.get_logger().info({"acted": "deadman held: moving", "no_joy": "waiting for joy messages",
                                    "stale": "joy messages are stale: not moving",
                                    "deadman_released": "deadman released: not moving"}[state])
            self.state = state
        if reason:
            return None
        return teleop.joy_motion(self.joy.axes, self.pad, self.dead_zone)


class KeyboardTeleop(TeleopBase):
    """The keyboard's teleop: ``key_source()`` returns the characters typed since its last
    call (never blocking). It publishes every period, zero motion when no key is held, so
    quitting (``quit`` becomes True) is what stops the actions."""

    KEY_POLL_S = 0.02

    def __init__(self, key_source, hold_s: float = 0.3, name: str = "keyboard_teleop", **kwargs):
        super().__init__(name, COMMON_PARAMETERS, **kwargs)
        self.key_source = key_source
        self.keys = teleop.KeyboardMotion(hold_s)
        self.quit = False
        self.create_timer(self.KEY_POLL_S, self.poll_keys)

    def poll_keys(self) -> None:
        now = time.monotonic()
        for key in teleop.split_keys(self.key_source()):
            command = self.keys.press(key, now)
            if command == "quit":
                self.quit = True
            elif command in ("gripper_close", "gripper_open"):
                self.command(command)
                self.get_logger().info("gripper " + ("closed" if self.gripper == teleop.CLOSED else "open"))
            elif command and command != "stop":
                self.command(command)

    def motion(self) -> np.ndarray:
        return self.keys.motion(time.monotonic())


def run_keyboard(hold_s: float = 0.3, namespace: str = "", key_source=None) -> int:
    """`crl teleop`: KeyboardTeleop on the terminal's keys (or ``key_source``) until q,
    Ctrl-D or Ctrl-C; the terminal is restored on every exit path."""
    import contextlib
    import sys

    terminal = contextlib.nullcontext() if key_source else teleop.TerminalKeys()
    try:
        with terminal:
            return _spin_keyboard(key_source or terminal.read, hold_s, namespace)
    except (RuntimeError, ValueError) as exc:   # no terminal, bad parameters
        print(f"crl teleop: {exc}", file=sys.stderr)
        return 2


def _spin_keyboard(key_source, hold_s: float, namespace: str) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init(args=[])
    node = None
    try:
        node = KeyboardTeleop(key_source, hold_s, namespace=namespace)
        print(teleop.KEYBOARD_HELP, flush=True)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not node.quit:
            executor.spin_once(timeout_sec=0.05)
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


def main(args=None) -> int:
    return common.run_node(TeleopNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
