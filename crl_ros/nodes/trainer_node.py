"""trainer_node: bags -> dataset -> trained model, with progress on ROS topics.

Runs ``crl convert`` on every bag in ``bag_dir`` (one episode each), then ``crl train``,
as child processes (training keeps its own cores and can be stopped with the node).
Publishes ``training_progress`` (std_msgs/String, latched: the last 50, JSON: stage
convert/train/done/failed, step, steps, message) and, when done, ``checkpoint`` (std_msgs/String, latched: the
model.pt path policy_node's ``model_path`` takes). Starts at launch
(``start_on_launch``) or on the ``train`` service (std_srvs/Trigger).
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from crl_ros.nodes import common

PARAMETERS = [
    ("bag_dir", "bags", "directory whose bags (dirs with metadata.yaml, .mcap, .db3) are the episodes"),
    ("out_dir", "runs/trainer", "training run directory (model.pt ends up here)"),
    ("dataset", "", "dataset file to write; empty = <out_dir>.h5"),
    ("algo", "stable_crl", "stable_crl | gcbc | gciql"),
    ("steps", 10000, "gradient steps"),
    ("settings", "", "agent config overrides, space separated key=value"),
    ("device", "auto", "auto | cpu | cuda"),
    ("image_topic", "", "camera topic in the bags (empty: guess)"),
    ("action_topic", "", "action topic in the bags (empty: 'action' or FK from joint states)"),
    ("rate_hz", 5.0, "control rate"),
    ("convert_args", "", "extra crl convert options, e.g. \"--crop 20 0 140 120 --size 48 48\" (default: camera_node.yaml's crop/size)"),
    ("start_on_launch", True, "start right away (else call the train service)"),
]


def find_bags(folder: Path) -> list[Path]:
    bags = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and (entry / "metadata.yaml").exists():
            bags.append(entry)
        elif entry.suffix in (".mcap", ".db3"):
            bags.append(entry)
    return bags


class TrainerNode(Node):
    def __init__(self, name: str = "trainer_node", **kwargs):
        super().__init__(name, **kwargs)
        self.p = common.declare_parameters(self, PARAMETERS, "trainer_node")
        self.progress_pub = self.create_publisher(String, "training_progress", common.latched_qos(depth=50))
        self.checkpoint_pub = self.create_publisher(String, "checkpoint", common.latched_qos())
        self.create_service(Trigger, "train", self.on_train)
        self.create_timer(1.0, self.poll_metrics)
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen | None = None
        self._stopping = False
        self.state = {"stage": "idle", "step": 0, "steps": int(self.p["steps"]), "message": ""}
        if self.p["start_on_launch"]:
            self.start()

    def start(self) -> str:
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("training is already running")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return "training started"

    def on_train(self, request, response):
        try:
            response.message = self.start()
            response.success = True
        except RuntimeError as exc:
            response.success, response.message = False, str(exc)
        return response

    def _report(self, **changes) -> None:
        self.state.update(changes)
        self.progress_pub.publish(String(data=json.dumps(self.state)))
        self.get_logger().info(f"{self.state['stage']}: {self.state['message']}")

    def _command(self, args: list[str]) -> tuple[int, str]:
        self._child = subprocess.Popen([sys.executable, "-m", "crl_ros.cli", *args], stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)
        tail = []
        for line in self._child.stdout:
            tail = (tail + [line.rstrip()])[-20:]
        return self._child.wait(), "\n".join(tail)

    def _run(self) -> None:
        p = self.p
        out_dir = Path(p["out_dir"]).expanduser()
        dataset = Path(p["dataset"]) if p["dataset"] else out_dir.with_suffix(".h5")
        folder = Path(p["bag_dir"]).expanduser()
        bags = find_bags(folder) if folder.is_dir() else []
        if not bags:
            self._report(stage="failed", message=f"no bags found in {folder}")
            return
        self._report(stage="convert", message=f"converting {len(bags)} bag(s) to {dataset}")
        args = ["convert", *map(str, bags), "--out", str(dataset), "--rate", str(p["rate_hz"]), "--quiet", "--overwrite"]
        if p["image_topic"]:
            args += ["--image-topic", p["image_topic"]]
        if p["action_topic"]:
            args += ["--action-topic", p["action_topic"]]
        args += p["convert_args"].split()
        code, output = self._command(args)
        if code != 0 or self._stopping:
            self._report(stage="failed", message=f"convert failed: {output}")
            return
        self._report(stage="train", message=f"training {p['algo']} for {p['steps']} steps in {out_dir}")
        args = ["train", "--data", str(dataset), "--algo", p["algo"], "--out", str(out_dir), "--steps", str(p["steps"]),
                "--device", p["device"], "--no-progress", "--force", "--log-every", str(max(1, min(100, int(p["steps"]))))]
        if p["settings"].split():
            args += ["--set", *p["settings"].split()]
        code, output = self._command(args)
        if code != 0 or self._stopping:
            self._report(stage="failed", message=f"train failed: {output}")
            return
        model = out_dir / "model.pt"
        self._report(stage="done", step=int(p["steps"]), message=str(model))
        self.checkpoint_pub.publish(String(data=str(model)))

    def poll_metrics(self) -> None:
        """During training, the latest step of metrics.jsonl becomes a progress message."""
        if self.state["stage"] != "train":
            return
        metrics = Path(self.p["out_dir"]).expanduser() / "metrics.jsonl"
        if not metrics.exists():
            return
        lines = metrics.read_text().strip().splitlines()
        if lines:
            last = json.loads(lines[-1])
            if last.get("step", 0) != self.state["step"]:
                self._report(step=int(last.get("step", 0)),
                             message=", ".join(f"{k} {v:.3g}" for k, v in last.items() if isinstance(v, float)))

    def close(self) -> None:
        self._stopping = True
        if self._child is not None and self._child.poll() is None:
            self._child.terminate()
            self._child.wait(10)


def main(args=None) -> int:
    return common.run_node(TrainerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
