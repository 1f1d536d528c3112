"""Process-level ROS 2 test harness: every node runs as its own process (python -m
crl_ros.nodes.<name>) on a ROS_DOMAIN_ID private to the test module, talking real DDS to
an rclpy client in the test process. Spawned processes are always stopped."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")

REPO = Path(__file__).resolve().parents[2]


def _domain_id(module_name: str) -> int:
    # Different per module and per pytest process, so parallel runs do not hear each other.
    return 1 + (zlib.crc32(module_name.encode()) + os.getpid() * 7) % 100


def _format_param(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_format_param(v) for v in value) + "]"
    return str(value)


class NodeProcess:
    def __init__(self, module: str, params: dict, env: dict, log_dir: Path, name: str | None = None,
                 remap: dict | None = None):
        self.module = module
        self.log_path = log_dir / f"{name or module}-{time.monotonic_ns()}.log"
        args = [sys.executable, "-m", f"crl_ros.nodes.{module}", "--ros-args"]
        if name:
            args += ["-r", f"__node:={name}"]
        for source, target in (remap or {}).items():
            args += ["-r", f"{source}:={target}"]
        for key, value in params.items():
            args += ["-p", f"{key}:={_format_param(value)}"]
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit and return its code. If it hangs, SIGABRT makes
        faulthandler (PYTHONFAULTHANDLER=1 in the harness env) print every thread's stack into
        the log, and the test fails with that log: a hang is then diagnosable from CI's output."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            raise AssertionError(f"{self.module} did not exit within {timeout} s; its log, with every "
                                 f"thread's stack:\n{self.log()[-12000:]}") from None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def interrupt(self, timeout: float = 10.0) -> int:
        """Ctrl-C, then wait; returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def stop(self) -> None:
        self.interrupt(5.0)
        self._log.close()


class RosHarness:
    """An rclpy node in the test process plus the node processes the test started."""

    def __init__(self, domain: int, log_dir: Path):
        from rclpy.executors import SingleThreadedExecutor

        self.domain = domain
        self.env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                        PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0",
                        PYTHONFAULTHANDLER="1")
        self.log_dir = log_dir
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node(f"test_client_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.processes: list[NodeProcess] = []

    def start(self, module: str, name: str | None = None, remap: dict | None = None, **params) -> NodeProcess:
        """Start crl_ros.nodes.<module> with ROS parameters ``params`` and topic ``remap``s."""
        proc = NodeProcess(module, params, self.env, self.log_dir, name, remap)
        self.processes.append(proc)
        return proc

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.02, max(0.0, end - time.monotonic())))

    def wait_for(self, predicate, timeout: float, what: str = "condition", procs=()) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return
            self.executor.spin_once(timeout_sec=0.02)
        logs = "\n".join(f"--- {p.module} ---\n{p.log()[-3000:]}" for p in (procs or self.processes))
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")

    def call(self, srv_type, name: str, request=None, timeout: float = 20.0, retry: bool = True,
             attempt_timeout: float = 4.0):
        """Call a service and return its response.

        Fast DDS drops a response when the server has not yet matched the client's reply
        reader (100 ms wait, "failed to send response (timeout)"), which happens on a loaded
        machine even after service_is_ready(). So the client settles a moment after the
        service is seen, and an idempotent request (``retry=True``) is sent again when no
        reply comes within ``attempt_timeout``.
        """
        client = self.node.create_client(srv_type, name)
        try:
            self.wait_for(client.service_is_ready, timeout, f"service {name}")
            self.spin_for(0.3)
            end = time.monotonic() + timeout
            request = request or srv_type.Request()
            while True:
                future = client.call_async(request)
                wait = min(attempt_timeout, end - time.monotonic()) if retry else end - time.monotonic()
                try:
                    self.wait_for(future.done, max(wait, 0.1), f"response from {name}")
                    return future.result()
                except AssertionError:
                    client.remove_pending_request(future)
                    if not retry or time.monotonic() >= end:
                        raise
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        for proc in self.processes:
            proc.stop()
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture(scope="module")
def ros(request, tmp_path_factory):
    harness = RosHarness(_domain_id(request.module.__name__), tmp_path_factory.mktemp("node_logs"))
    yield harness
    harness.close()


@pytest.fixture
def procs(ros):
    """Processes started through this fixture's ros harness are stopped after each test."""
    before = len(ros.processes)
    yield ros
    for proc in ros.processes[before:]:
        proc.stop()
    del ros.processes[before:]


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    """record (sim, through the ROS graph) -> convert -> train a few steps, with the real
    commands as child processes. Returns the paths; test_pipeline checks each stage."""
    root = tmp_path_factory.mktemp("pipeline")
    env = dict(os.environ, ROS_DOMAIN_ID=str(_domain_id("pipeline")), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    crl = [sys.executable, "-m", "crl_ros.cli"]

    def run(*args, timeout=240):
        result = subprocess.run([*crl, *args], env=env, cwd=root, capture_output=True, text=True, timeout=timeout)
        return result

    paths = {"bags": root / "bags", "dataset": root / "demos.h5", "run": root / "run"}
    paths["record"] = run("record", "--sim", "--episodes", "2", "--steps", "8", "--task", "reach",
                          "--image-size", "120", "160", "--out", str(paths["bags"]))
    paths["convert"] = run("convert", *sorted(str(p) for p in paths["bags"].glob("episode_*")),
                           "--out", str(paths["dataset"]), "--crop", "20", "0", "140", "120", "--size", "48", "48",
                           "--quiet")
    paths["train"] = run("train", "--data", str(paths["dataset"]), "--algo", "stable_crl", "--out", str(paths["run"]),
                         "--steps", "2", "--batch-size", "16", "--device", "cpu", "--no-progress", "--log-every", "1")
    paths["model"] = paths["run"] / "model.pt"
    return paths
