"""camera_node: camera frames in, policy-ready ``observation`` (rgb8, cropped + resized) out.

Sources (parameter ``source``):
- ``topic``: ingest an existing driver's ``image_raw`` (sensor_msgs/Image: rgb8, bgr8,
  rgba8, bgra8, mono8) or, with ``input_transport: compressed``, ``image_raw/compressed``;
- ``device:<index>`` / ``file:<video>``: OpenCV capture (opencv-python is only needed
  for these), also republished as ``image_raw`` when ``publish_raw`` is true;
- ``folder:<dir>``: the images of a folder in name order, looped (tests, replays).

The ``image_raw`` subscription is reliable keep-last by default (``input_reliability``
``auto``), like the frames sim_node and camera_node publish (`common.frame_qos`): a
640x480 rgb8 frame is ~15 DDS fragments, and a best-effort reader in another process
loses the whole frame when one fragment is late (on 2 busy cores the observation came
at 13-16 of 30 Hz, with gaps up to 0.7 s, and policy_node skipped control steps as
stale); a reliable reader gets the fragment resent. Keep-last never blocks the driver.
A driver that publishes best effort (sensor-data QoS) does not match a reliable reader:
``auto`` then subscribes again best effort and says so; ``reliable`` / ``best_effort``
fix the choice.

Every frame goes through `crl_ros.robot.camera.preprocess_image`, the function the bag
converter uses too (JPEG frames `preprocess_compressed`, with its reduced-scale decode,
as `crl convert` does by default). The observation keeps the input frame's header stamp, so
policy_node can tell how old it is.
"""
from __future__ import annotations

from pathlib import Path

from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from crl_ros.nodes import common
from crl_ros.robot import camera

PARAMETERS = [
    ("source", "topic", "topic | device:<index> | file:<video path> | folder:<image dir>"),
    ("input_transport", "raw", "with source=topic: raw (image_raw) or compressed (image_raw/compressed)"),
    ("input_reliability", "auto", "with source=topic: auto (reliable; best effort when the driver publishes "
                                  "best effort) | reliable | best_effort"),
    ("fps", 30.0, "frame rate for device/file/folder sources"),
    ("crop", [0, 0, 0, 0], "[x0, y0, x1, y1] pixels of the camera frame kept before resizing; all 0 = whole frame"),
    ("size", [48, 48], "[height, width] of the observation"),
    ("frame_id", "camera", "frame_id of published images (device/file/folder sources)"),
    ("publish_raw", True, "device/file/folder sources: also publish the full frame on image_raw"),
    common.NICE_PARAMETER,
]


class CameraNode(Node):
    def __init__(self, name: str = "camera_node", **kwargs):
        super().__init__(name, **kwargs)
        p = common.declare_parameters(self, PARAMETERS, "camera_node")
        common.apply_nice(self, int(p["nice"]))
        self.crop = common.crop_from_param(p["crop"])
        self.size = tuple(int(v) for v in p["size"])
        if len(self.size) != 2 or min(self.size) <= 0:
            raise ValueError(f"camera_node: size must be [height, width], got {list(p['size'])}")
        self.frame_id = p["frame_id"]
        self.frames_in = 0
        self.frames_out = 0
        self._capture = None
        self._folder: list[Path] = []
        self._folder_index = 0
        self.obs_pub = self.create_publisher(Image, "observation", common.sensor_qos())
        self.raw_pub = None
        source = str(p["source"])
        self.input = None
        if source == "topic":
            transports = {"raw": (Image, "image_raw"), "compressed": (CompressedImage, "image_raw/compressed")}
            if p["input_transport"] not in transports:
                raise ValueError(f"camera_node: input_transport must be raw or compressed, got {p['input_transport']!r}")
            if p["input_reliability"] not in ("auto", "reliable", "best_effort"):
                raise ValueError("camera_node: input_reliability must be auto, reliable or best_effort, "
                                 f"got {p['input_reliability']!r}")
            self._input_type, self._input_topic = transports[p["input_transport"]]
            self._subscribe(reliable=p["input_reliability"] != "best_effort",
                            fall_back=p["input_reliability"] == "auto")
        else:
            kind, _, arg = source.partition(":")
            if kind in ("device", "file"):
                self._capture = _open_capture(int(arg) if kind == "device" else arg, source)
            elif kind == "folder":
                self._folder = sorted(f for f in Path(arg).iterdir()
                                      if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
                if not self._folder:
                    raise ValueError(f"camera_node: no images in folder {arg!r}")
            else:
                raise ValueError(f"camera_node: unknown source {source!r} (topic, device:N, file:PATH, folder:DIR)")
            if p["publish_raw"]:
                self.raw_pub = self.create_publisher(Image, "image_raw", common.frame_qos())
            self.create_timer(1.0 / float(p["fps"]), self.on_timer)
        self.get_logger().info(f"source={source} crop={self.crop} size={self.size}")

    def _subscribe(self, reliable: bool, fall_back: bool) -> None:
        """(Re)create the input subscription: reliable (frame_qos) or best effort (sensor_qos)."""
        from rclpy.event_handler import SubscriptionEventCallbacks

        if self.input is not None:
            self.destroy_subscription(self.input)
        events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos) if fall_back else None
        self.input = self.create_subscription(self._input_type, self._input_topic, self.on_image,
                                              common.frame_qos() if reliable else common.sensor_qos(),
                                              event_callbacks=events)
        self.input_reliable = reliable

    def _on_incompatible_qos(self, info) -> None:
        # A best-effort publisher: subscribe again best effort, from the executor (not
        # inside the subscription's own event callback).
        if not self.input_reliable:
            return
        self.get_logger().warning(f"{self.input.topic_name}: the publisher is best effort; subscribing best effort "
                                  "(large frames from another process may be lost: publish reliable if you can)")
        self.input_reliable = False
        timer = None

        def resubscribe():
            self.destroy_timer(timer)
            self._subscribe(reliable=False, fall_back=False)

        timer = self.create_timer(0.0, resubscribe)

    def on_image(self, msg) -> None:
        self.frames_in += 1
        if isinstance(msg, CompressedImage):
            try:
                obs, _ = camera.preprocess_compressed(memoryview(msg.data), msg.format, self.crop, self.size)
            except ValueError as exc:
                self.get_logger().error(f"dropping frame: {exc}", throttle_duration_sec=2.0)
                return
            self._publish(obs, msg.header.stamp, msg.header.frame_id)
            return
        try:
            frame = common.image_from_msg(msg)
        except ValueError as exc:
            self.get_logger().error(f"dropping frame: {exc}", throttle_duration_sec=2.0)
            return
        self.publish_observation(frame, msg.header.stamp, msg.header.frame_id)

    def publish_observation(self, frame, stamp, frame_id: str) -> None:
        try:
            obs = camera.preprocess_image(frame, self.crop, self.size)
        except ValueError as exc:
            self.get_logger().error(f"cannot preprocess a {frame.shape[1]}x{frame.shape[0]} frame: {exc}",
                                    throttle_duration_sec=2.0)
            return
        self._publish(obs, stamp, frame_id)

    def _publish(self, obs, stamp, frame_id: str) -> None:
        self.obs_pub.publish(common.image_msg(obs, stamp, frame_id))
        self.frames_out += 1

    def on_timer(self) -> None:
        frame = self._next_frame()
        if frame is None:
            return
        stamp = self.get_clock().now().to_msg()
        if self.raw_pub is not None:
            self.raw_pub.publish(common.image_msg(frame, stamp, self.frame_id))
        self.publish_observation(frame, stamp, self.frame_id)

    def _next_frame(self):
        if self._folder:
            path = self._folder[self._folder_index % len(self._folder)]
            self._folder_index += 1
            return camera.load_image_file(str(path))
        ok, bgr = self._capture.read()
        if not ok:
            self.get_logger().warning("camera gave no frame", throttle_duration_sec=2.0)
            return None
        return bgr[:, :, ::-1].copy()

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def _open_capture(target, source: str):
    try:
        import cv2
    except ImportError:
        raise ImportError(f"camera_node source {source!r} needs OpenCV: pip install opencv-python-headless "
                          "(or use source=topic with a camera driver, or folder:<dir>)") from None
    cap = cv2.VideoCapture(target)
    if not cap.isOpened():
        raise ValueError(f"camera_node: cannot open {source!r}")
    return cap


def main(args=None) -> int:
    return common.run_node(CameraNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
