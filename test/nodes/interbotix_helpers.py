"""Shared by the Interbotix backend tests: arm_node (backend interbotix) as a process with an
extra environment and namespace, fed fake joint states, watched through arm_status."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from crl_ros.nodes import common
from crl_ros.robot import kinematics

REPO = Path(__file__).resolve().parents[2]
Q0 = np.array([0.0, -0.3, 0.3, 0.0, 0.5, 0.0])
GOOD = [0.02, 0.0, -0.01, 0.0, 0.0, 0.05, 0.0]


class ArmNodeProcess:
    """``python -m crl_ros.nodes.arm_node`` in ``namespace`` (the conftest's NodeProcess has no
    namespace or environment of its own); stopped with Ctrl-C like the harness does."""

    def __init__(self, ros, env: dict, namespace: str = "", **params):
        self.log_path = ros.log_dir / f"arm_node-{time.monotonic_ns()}.log"
        args = [sys.executable, "-m", "crl_ros.nodes.arm_node", "--ros-args"]
        if namespace:
            args += ["-r", f"__ns:=/{namespace}"]
        for key, value in params.items():
            value = str(value).lower() if isinstance(value, bool) else value
            args += ["-p", f"{key}:={value}"]
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, env=dict(ros.env, **env), cwd=REPO, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def interrupt(self, timeout: float = 30.0) -> int:
        if self.alive():
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode


class ArmClient:
    """The test's side of arm_node: joint states in (optional), actions out, status watched."""

    def __init__(self, ros, prefix: str = "", publish_joints: bool = True):
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float32MultiArray, String

        self.ros, self.prefix = ros, prefix
        self.status: list[dict] = []
        self.timer = None
        if publish_joints:
            js_pub = ros.node.create_publisher(JointState, prefix + "joint_states", common.sensor_qos(depth=5))

            def publish_joints():
                msg = JointState(name=kinematics.JOINT_STATE_NAMES, position=[*Q0, 0.0, 0.03, -0.03])
                msg.header.stamp = ros.node.get_clock().now().to_msg()
                js_pub.publish(msg)
            self.timer = ros.node.create_timer(0.02, publish_joints)
        ros.node.create_subscription(String, prefix + "arm_status", lambda m: self.status.append(json.loads(m.data)),
                                     common.reliable_qos())
        self.act_pub = ros.node.create_publisher(Float32MultiArray, prefix + "action", common.reliable_qos())

    def wait_ready(self, arm: ArmNodeProcess, timeout: float = 90.0) -> None:
        self.ros.wait_for(lambda: self.status and self.status[-1]["joint_states_fresh"] or not arm.alive(),
                          timeout, "arm_node status with fresh joints")
        assert arm.alive(), arm.log()
        self.ros.wait_for(lambda: self.act_pub.get_subscription_count() > 0, 20, "arm_node subscribed to action")

    def send(self, values) -> None:
        self.act_pub.publish(common.action_msg(values))

    def enable(self, on: bool = True) -> None:
        from std_srvs.srv import SetBool
        assert self.ros.call(SetBool, self.prefix + "enable", SetBool.Request(data=on)).success

    def actions(self, n: int, values=GOOD, period: float = 0.2) -> None:
        for _ in range(n):
            self.send(values)
            self.ros.spin_for(period)

    def close(self) -> None:
        if self.timer is not None:
            self.ros.node.destroy_timer(self.timer)
