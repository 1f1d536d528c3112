"""recorder_node: records the configured topics to rosbag2, one bag per episode.

``start_episode`` (std_srvs/Trigger) opens ``<output_dir>/<prefix>_NNNN_<time>`` and
``end_episode`` closes it (metadata written: the bag is complete). An episode that
recorded no message is not kept: its bag is deleted and the reply (success false) and the
log say so. Messages are stored
exactly as received (serialised CDR, like ``ros2 bag record``) with the `rosbags`
library: mcap by default, sqlite3 with ``storage: sqlite3``, zstd with
``compression: zstd``. ``image_transport: compressed`` records each camera topic named
``image_raw`` (or ``.../image_raw``) as its image_transport twin ``image_raw/compressed``
(sensor_msgs/CompressedImage, e.g. sim_node's JPEG: ~28x smaller bags); ``raw`` (the
default) records the topics as named. Topic types are discovered from the graph; a
topic that appears later is picked up when it does. On shutdown -- Ctrl-C, SIGTERM or a crash in a callback
-- the open bag is closed, so nothing recorded is lost; killed hard (SIGKILL, power loss), it
loses at most the last FLUSH_INTERVAL_S: the bag is put on disk that often (mcap without
its summary and metadata.yaml: `crl convert` and `crl bag repair` read it back). ``recorder_status``
(std_msgs/String, JSON, latched) says whether an episode is recording, where and how much.
"""
from __future__ import annotations

import importlib
import json
import shutil
import time
from pathlib import Path

from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from crl_ros.bags.writer import BagWriteError, BagWriter
from crl_ros.nodes import common

PARAMETERS = [
    ("output_dir", "bags", "directory for the episode bags"),
    ("storage", "mcap", "mcap | sqlite3"),
    ("compression", "none", "none | zstd"),
    ("topics", ["image_raw", "joint_states", "action"], "topics to record (relative names resolve in the node's namespace)"),
    ("image_transport", "raw", "raw: record the topics as named; compressed: record a topic named image_raw "
     "(or ending in /image_raw) as its image_raw/compressed twin (CompressedImage)"),
    ("episode_prefix", "episode", "bag directory name prefix"),
    ("auto_start", False, "start an episode right away"),
]


IMAGE_TRANSPORTS = ("raw", "compressed")
FLUSH_INTERVAL_S = 1.0  # how much of an open episode a hard kill may lose


def recorded_topics(topics, image_transport: str = "raw") -> list[str]:
    """The topics to subscribe to: with ``compressed``, ``image_raw`` and ``<ns>/image_raw``
    become ``.../image_raw/compressed``; empty names and repeats are dropped."""
    if image_transport not in IMAGE_TRANSPORTS:
        raise ValueError(f"recorder_node: image_transport must be one of {IMAGE_TRANSPORTS}, got {image_transport!r}")
    out: list[str] = []
    for topic in topics:
        if topic and image_transport == "compressed" and topic.rstrip("/").split("/")[-1] == "image_raw":
            topic = topic.rstrip("/") + "/compressed"
        if topic and topic not in out:
            out.append(topic)
    return out


def message_class(type_name: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    package, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class RecorderNode(Node):
    def __init__(self, name: str = "recorder_node", **kwargs):
        super().__init__(name, **kwargs)
        p = common.declare_parameters(self, PARAMETERS, "recorder_node")
        self.output_dir = Path(p["output_dir"]).expanduser()
        self.storage = p["storage"]
        self.compression = p["compression"]
        self.prefix = p["episode_prefix"]
        self.image_transport = p["image_transport"]
        self.topics = list(dict.fromkeys(self.resolve_topic_name(t)
                                         for t in recorded_topics(p["topics"], self.image_transport)))
        if not self.topics:
            raise ValueError("recorder_node: no topics to record")
        self.types: dict[str, str] = {}
        self.bag: BagWriter | None = None
        self.episodes_done: list[str] = []
        # latched, depth 1: a late subscriber (ros2 topic echo --once) gets the current status at once
        self.status_pub = self.create_publisher(String, "recorder_status", common.latched_qos())
        self.create_service(Trigger, "start_episode", self.on_start)
        self.create_service(Trigger, "end_episode", self.on_end)
        self.create_timer(0.25, self.discover)
        self.create_timer(0.5, self.publish_status)
        self.create_timer(FLUSH_INTERVAL_S, self.flush)
        self.discover()
        if p["auto_start"]:
            self.start_episode()

    def discover(self) -> None:
        """Subscribe to configured topics once their type is known (QoS matched to the publishers)."""
        for topic, types in self.get_topic_names_and_types():
            if topic not in self.topics or topic in self.types:
                continue
            if not self.get_publishers_info_by_topic(topic):
                # Only a subscriber (e.g. arm_node on joint_states) is known yet: the QoS must
                # match the publisher's (a reliable reader never hears a best-effort writer),
                # so wait for the publisher to be discovered.
                continue
            type_name = types[0]
            try:
                cls = message_class(type_name)
            except (ImportError, AttributeError, ValueError):
                self.get_logger().error(f"cannot record {topic}: message type {type_name} is not installed")
                self.types[topic] = type_name
                continue
            self.types[topic] = type_name
            self.create_subscription(cls, topic, lambda raw, t=topic: self.on_message(t, raw),
                                     self._qos_for(topic), raw=True)
            self.get_logger().info(f"recording {topic} [{type_name}]")

    def _qos_for(self, topic: str):
        from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
        infos = self.get_publishers_info_by_topic(topic)
        if infos and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos):
            return common.latched_qos()
        if any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos):
            return common.sensor_qos(depth=100)
        return common.reliable_qos(depth=100)

    def on_message(self, topic: str, raw: bytes) -> None:
        if self.bag is None:
            return
        try:
            self.bag.write_raw(topic, time.time_ns(), raw, self.types[topic])
        except BagWriteError as exc:
            self.get_logger().error(f"{exc}", throttle_duration_sec=2.0)

    def flush(self) -> None:
        if self.bag is not None:
            try:
                self.bag.flush()
            except OSError as exc:  # a full disk: say so, keep recording into memory
                self.get_logger().error(f"cannot flush {self.bag.path}: {exc}", throttle_duration_sec=10.0)

    def start_episode(self) -> str:
        if self.bag is not None:
            raise BagWriteError(f"episode already recording to {self.bag.path}; call end_episode first")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        index = len(list(self.output_dir.glob(f"{self.prefix}_*"))) + 1
        path = self.output_dir / f"{self.prefix}_{index:04d}_{time.strftime('%Y%m%d-%H%M%S')}"
        self.bag = BagWriter(path, self.storage, self.compression)
        for topic, type_name in self.types.items():
            self.bag.add_topic(topic, type_name)
        self.get_logger().info(f"episode started: {path}")
        self.publish_status()
        return str(path)

    def end_episode(self, publish: bool = True) -> tuple[str, int]:
        """Close the open episode: (bag path, message count). A bag with no message is
        deleted (count 0: the path no longer exists)."""
        if self.bag is None:
            raise BagWriteError("no episode is recording")
        bag, self.bag = self.bag, None
        path = bag.close()
        if bag.message_count == 0:
            shutil.rmtree(path, ignore_errors=True)
            if publish:
                self.get_logger().warning(f"episode recorded no messages on {self.topics}: deleted the empty bag {path}")
        else:
            self.episodes_done.append(str(path))
            if publish:  # not during shutdown: the context may already be gone
                self.get_logger().info(f"episode saved: {path} ({bag.message_count} messages)")
        if publish:
            self.publish_status()
        return str(path), bag.message_count

    def on_start(self, request, response):
        try:
            path = self.start_episode()
            response.success, response.message = True, path
        except BagWriteError as exc:
            response.success, response.message = False, str(exc)
        return response

    def on_end(self, request, response):
        try:
            path, count = self.end_episode()
            response.success, response.message = count > 0, path
            if count == 0:
                response.message = f"no messages were recorded on {self.topics}: deleted the empty bag {path}"
        except BagWriteError as exc:
            response.success, response.message = False, str(exc)
        return response

    def publish_status(self) -> None:
        status = {"recording": self.bag is not None, "bag": str(self.bag.path) if self.bag else None,
                  "messages": self.bag.message_count if self.bag else 0,
                  "topics": {t: t in self.types for t in self.topics}, "episodes": len(self.episodes_done)}
        self.status_pub.publish(String(data=json.dumps(status)))

    def close(self) -> None:
        if self.bag is not None:
            path, count = self.end_episode(publish=False)
            if count:
                print(f"[recorder_node] shutdown: closed {path} ({count} messages)", flush=True)
            else:
                print(f"[recorder_node] shutdown: the open episode recorded no messages; deleted the empty bag "
                      f"{path}", flush=True)


def main(args=None) -> int:
    return common.run_node(RecorderNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
