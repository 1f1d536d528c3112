"""trainer_node: bags or datasets -> trained model, with progress on ROS topics.

Trains on ``data`` (.h5 datasets, e.g. from ``crl demos`` or ``crl convert``) directly, or,
when ``data`` is empty, runs ``crl convert`` on the bags in ``bag_dir`` (one episode each)
first; then ``crl train``. Both run as child processes (training keeps its own cores and
can be stopped with the node).

Publishes ``training_progress`` (std_msgs/String, JSON: run (1, 2, ... per start), stage
convert/train/done/failed, step, steps, profile, message) and, when done, ``checkpoint``
(std_msgs/String: the model.pt path policy_node's ``model_path`` takes). Both are latched
with depth 1 (reliable, transient local): a subscriber that joins late, like
``ros2 topic echo --once /training_progress``, gets the current state, not old history.
Starts at launch (``start_on_launch``) or on the ``train`` service (std_srvs/Trigger); each
start reads the parameters again.

``profile`` auto trains with ``crl train --profile cpu`` when training runs on a CPU (device
cpu, or auto without CUDA) and with the paper profile otherwise, so a run finishes on the
machine it starts on. A run into an ``out_dir`` that already holds one starts over with
``crl train --force``: the old run is renamed aside (``<out_dir>.old-<time>``), never deleted.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from crl_ros.learning.profiles import get_profile
from crl_ros.nodes import common

BAG_SUFFIXES = (".mcap", ".db3")

CHILD_STOP_TIMEOUT_S = 120.0

PARAMETERS = [
    ("data", "", ".h5 datasets to train on without conversion: files or folders of .h5 files, space or comma "
                 "separated; empty = convert the bags in bag_dir"),
    ("bag_dir", "bags", "a folder of episode bags (dirs with metadata.yaml, .mcap, .db3 files) or one bag; "
                        "used when data is empty"),
    ("out_dir", "runs/trainer", "training run directory (model.pt ends up here; a run already there is renamed "
                                "aside to <out_dir>.old-<time>)"),
    ("dataset", "", "dataset file the bags are converted to; empty = <out_dir>.h5"),
    ("algo", "stable_crl", "stable_crl | gcbc | gciql"),
    ("profile", "auto", "auto | cpu | paper (crl train --profile); auto = cpu when training runs on a CPU "
                        "(device cpu, or auto without CUDA), else paper"),
    ("steps", 0, "gradient steps; 0 = the profile's (cpu 32000, paper 300000)"),
    ("settings", "", "agent config overrides, space separated key=value (win over the profile)"),
    ("device", "auto", "auto | cpu | cuda"),
    ("seed", common.AnyType(""), "seed of weights init and batch sampling; empty = crl train's default"),
    ("image_topic", "", "camera topic in the bags (empty: guess)"),
    ("action_topic", "", "action topic in the bags (empty: 'action' or FK from joint states)"),
    ("joint_topic", "", "joint state topic in the bags (empty: the converter's default, joint_states)"),
    ("rate_hz", 5.0, "control rate the bags are sampled at"),
    ("crop", common.AnyType(""), "crop \"x0 y0 x1 y1\" of the camera frames; empty = camera_node.yaml's "
                                 "(not applied to frames already at the dataset size)"),
    ("size", common.AnyType(""), "dataset image size \"H W\"; empty = camera_node.yaml's"),
    ("max_gap", common.AnyType(""), "seconds a topic may go silent in a bag; empty = the converter's default"),
    ("gap_policy", "", "error | split: a longer gap stops the conversion or splits the episode; "
                       "empty = the converter's default"),
    ("convert_args", "", "extra crl convert options, e.g. \"--min-fragment 2 --no-gripper\""),
    ("start_on_launch", True, "start right away (else call the train service)"),
]


class SetupError(Exception):
    """A run that cannot start: the message is the failed progress message."""


def _words(value) -> list[str]:
    """A parameter holding several values: a list, or a space/comma separated string."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return str(value).replace(",", " ").split()


def is_bag(path: Path) -> bool:
    return (path.is_dir() and (path / "metadata.yaml").exists()) or (path.is_file() and path.suffix in BAG_SUFFIXES)


def find_bags(path: Path) -> list[Path]:
    """The episode bags at ``path``: the bag itself, or the bags in the folder."""
    if is_bag(path):
        return [path]
    return [entry for entry in sorted(path.iterdir()) if is_bag(entry)] if path.is_dir() else []


def find_datasets(spec) -> list[Path]:
    """The .h5 files the ``data`` parameter names (files, or every .h5 in a folder)."""
    paths = []
    for word in _words(spec):
        path = Path(word).expanduser()
        if path.is_dir():
            found = sorted(path.glob("*.h5"))
            if not found:
                raise SetupError(f"data: no .h5 datasets in the folder {path}")
            paths += found
        elif path.is_file():
            paths.append(path)
        else:
            raise SetupError(f"data: {path} does not exist (expected .h5 datasets or folders of them)")
    return paths


def resolve_profile(profile: str, device: str) -> tuple[str, str]:
    """(profile name, why) for the ``profile`` parameter; auto picks one sized for the machine."""
    if profile != "auto":
        get_profile(profile)  # an unknown name fails here, with the list of profiles
        return profile, "as set"
    if device == "cpu":
        return "cpu", "auto: device cpu"
    if device != "auto":
        return "paper", f"auto: device {device}"
    import torch
    return ("paper", "auto: CUDA available") if torch.cuda.is_available() else ("cpu", "auto: no CUDA")


class TrainerNode(Node):
    def __init__(self, name: str = "trainer_node", **kwargs):
        super().__init__(name, **kwargs)
        self.p = common.declare_parameters(self, PARAMETERS, "trainer_node")
        self.progress_pub = self.create_publisher(String, "training_progress", common.latched_qos())
        self.checkpoint_pub = self.create_publisher(String, "checkpoint", common.latched_qos())
        self.create_service(Trigger, "train", self.on_train)
        self.create_timer(1.0, self.poll_metrics)
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen | None = None
        self._stopping = False
        self._lock = threading.Lock()
        self._runs = 0
        self.state = {"run": 0, "stage": "idle", "step": 0, "steps": 0, "profile": "", "message": ""}
        self._metrics_path: Path | None = None
        self._stale_metrics: tuple[int, int] | None = None  # (device, inode) of the previous run's metrics.jsonl
        self._metrics_id: tuple[int, int] | None = None
        self._metrics_offset = 0
        if self.p["start_on_launch"]:
            self.start()

    def start(self) -> str:
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("training is already running")
        self._runs += 1
        # read at every start, so `ros2 param set` between runs (new data, more steps) takes effect
        self.p = {name: self.get_parameter(name).value for name, _, _ in PARAMETERS}
        with self._lock:  # a fresh state: nothing of the previous run's progress carries over
            self.state = {"run": self._runs, "stage": "starting", "step": 0, "steps": 0, "profile": "",
                          "message": ""}
            self._metrics_path = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return f"training run {self._runs} started"

    def on_train(self, request, response):
        try:
            response.message = self.start()
            response.success = True
        except RuntimeError as exc:
            response.success, response.message = False, str(exc)
        return response

    def _report(self, **changes) -> None:
        with self._lock:
            self.state.update(changes)
            self._publish(self.progress_pub, json.dumps(self.state))
        if self.context.ok():
            self.get_logger().info(f"{self.state['stage']}: {self.state['message']}")

    def _publish(self, publisher, text: str) -> None:
        """Publish unless the node is shutting down (Ctrl-C while training: the training
        thread's last report must not end in a traceback)."""
        if not self.context.ok():
            return
        try:
            publisher.publish(String(data=text))
        except Exception:  # noqa: BLE001  the context went invalid between the check and the publish
            if self.context.ok():
                raise

    def _command(self, args: list[str]) -> tuple[int, str]:
        # Its own session: a terminal's Ctrl-C reaches only this node, which then sends the
        # child exactly one SIGINT (a second one would make `crl train` abort before its checkpoint).
        self._child = subprocess.Popen([sys.executable, "-m", "crl_ros.cli", *args], stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True, start_new_session=True)
        tail = []
        for line in self._child.stdout:
            tail = (tail + [line.rstrip()])[-20:]
        return self._child.wait(), "\n".join(tail)

    def _run(self) -> None:
        try:
            self._train()
        except SetupError as exc:
            self._report(stage="failed", message=str(exc))
        except Exception as exc:  # noqa: BLE001  (a thread's error would otherwise only reach stderr)
            self._report(stage="failed", message=f"{type(exc).__name__}: {exc}")

    def _train(self) -> None:
        p = self.p
        out_dir = Path(p["out_dir"]).expanduser()
        try:
            profile, why = resolve_profile(p["profile"], p["device"])
        except ValueError as exc:
            raise SetupError(f"profile: {exc}") from None
        steps = int(p["steps"]) or get_profile(profile).steps
        with self._lock:
            self.state.update(steps=steps, profile=profile)
        if _words(p["data"]):
            datasets = find_datasets(p["data"])
        else:
            datasets = [self._convert(out_dir)]
        if self._stopping:
            return
        self._start_metrics(out_dir / "metrics.jsonl")
        self._report(stage="train", message=f"training {p['algo']} with the {profile} profile ({why}) for {steps} "
                                            f"steps on {len(datasets)} dataset(s) in {out_dir}")
        args = ["train", "--data", *map(str, datasets), "--algo", p["algo"], "--out", str(out_dir),
                "--profile", profile, "--steps", str(steps), "--device", p["device"], "--no-progress", "--force",
                "--log-every", str(max(1, min(100, steps)))]
        if str(p["seed"]).strip():
            args += ["--seed", str(p["seed"]).strip()]
        if p["settings"].split():
            args += ["--set", *p["settings"].split()]
        code, output = self._command(args)
        if code != 0 or self._stopping:
            self._report(stage="failed", message=f"train failed: {output}")
            return
        model = out_dir / "model.pt"
        self._report(stage="done", step=steps, message=str(model))
        self._publish(self.checkpoint_pub, str(model))

    def _convert(self, out_dir: Path) -> Path:
        """crl convert of the bags in bag_dir; returns the dataset written."""
        p = self.p
        folder = Path(p["bag_dir"]).expanduser()
        bags = find_bags(folder)
        if not bags:
            if not folder.exists():
                raise SetupError(f"no bags found: {folder} does not exist (bag_dir: a folder of episode bags or one "
                                 f"bag; data: .h5 datasets)")
            h5 = sorted(folder.glob("*.h5")) if folder.is_dir() else [folder] * (folder.suffix == ".h5")
            hint = (f"; it holds .h5 datasets ({', '.join(f.name for f in h5[:3])}): set data:={folder} to train "
                    f"on them") if h5 else ""
            raise SetupError(f"no bags found in {folder}: expected episode bags (folders with metadata.yaml, .mcap "
                             f"or .db3 files) or one bag{hint}")
        dataset = Path(p["dataset"]).expanduser() if p["dataset"] else out_dir.with_suffix(".h5")
        args = ["convert", *map(str, bags), "--out", str(dataset), "--rate", str(p["rate_hz"]), "--quiet",
                "--overwrite"]
        for name, option, count in (("image_topic", "--image-topic", 1), ("action_topic", "--action-topic", 1),
                                    ("joint_topic", "--joint-topic", 1), ("crop", "--crop", 4), ("size", "--size", 2),
                                    ("max_gap", "--max-gap", 1), ("gap_policy", "--gap-policy", 1)):
            values = _words(p[name])
            if values and len(values) != count:
                raise SetupError(f"{name} takes {count} value(s), got {p[name]!r}")
            if values:
                args += [option, *values]
        args += p["convert_args"].split()
        self._report(stage="convert", message=f"converting {len(bags)} bag(s) from {folder} to {dataset}")
        code, output = self._command(args)
        if code != 0 or self._stopping:
            raise SetupError(f"convert failed: {output}")
        return dataset

    def _start_metrics(self, path: Path) -> None:
        """Progress comes from this run's metrics.jsonl only: a file already at ``path`` is the
        previous run's until crl train --force moves that run aside."""
        try:
            stat = path.stat()
            stale = (stat.st_dev, stat.st_ino)
        except FileNotFoundError:
            stale = None
        with self._lock:
            self._metrics_path, self._stale_metrics, self._metrics_id, self._metrics_offset = path, stale, None, 0

    def poll_metrics(self) -> None:
        """During training, the latest train step of this run's metrics.jsonl becomes a progress message."""
        path = self._metrics_path
        if self.state["stage"] != "train" or path is None:
            return
        try:
            stat = path.stat()
        except FileNotFoundError:
            return
        file_id = (stat.st_dev, stat.st_ino)
        if file_id == self._stale_metrics:
            return
        if file_id != self._metrics_id:
            self._metrics_id, self._metrics_offset = file_id, 0
        with open(path, "rb") as f:
            f.seek(self._metrics_offset)
            chunk = f.read()
        complete = chunk[:chunk.rfind(b"\n") + 1]  # a line being written waits for the next poll
        self._metrics_offset += len(complete)
        rows = [json.loads(line) for line in complete.decode().splitlines() if line.strip()]
        rows = [row for row in rows if row.get("kind", "train") == "train"]
        if rows and int(rows[-1].get("step", 0)) != self.state["step"]:
            last = rows[-1]
            self._report(step=int(last.get("step", 0)),
                         message=", ".join(f"{k} {v:.3g}" for k, v in last.items() if isinstance(v, float)))

    def close(self) -> None:
        """Stop a running child the way a user would: one SIGINT, so `crl train` writes a step
        checkpoint (`--resume` continues from it) and `crl convert` removes its partial file;
        killed only if it has not finished after ``CHILD_STOP_TIMEOUT_S``."""
        self._stopping = True
        child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(CHILD_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)
        if self._thread is not None:
            self._thread.join(5)


def main(args=None) -> int:
    return common.run_node(TrainerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
