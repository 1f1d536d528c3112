"""camera_node: camera frames in, policy-ready ``observation`` (rgb8, cropped + resized) out.

Sources (parameter ``source``):
- ``topic``: ingest an existing driver's ``image_raw`` (sensor_msgs/Image: rgb8, bgr8,
  rgba8, bgra8, mono8) or, with ``input_transport: compressed``, ``image_raw/compressed``;
- ``device:<index>`` / ``file:<video>``: OpenCV capture (opencv-python is only needed
  for these), also republished as ``image_raw`` when ``publish_raw`` is true;
- ``folder:<dir>``: the images of a folder in name order, looped (tests, replays).

Every frame goes through `crl_ros.robot.camera.preprocess_image`, the function the bag
converter uses too. The observation keeps the input frame's header stamp, so
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
    ("fps", 30.0, "frame rate for device/file/folder sources"),
    ("crop", [0, 0, 0, 0], "[x0, y0, x1, y1] pixels of the camera frame kept before resizing; all 0 = whole frame"),
    ("size", [48, 48], "[height, width] of the observation"),
    ("frame_id", "camera", "frame_id of published images (device/file/folder sources)"),
    ("publish_raw", True, "device/file/folder sources: also publish the full frame on image_raw"),
]


class CameraNode(Node):
    def __init__(self, name: str = "camera_node", **kwargs):
        super().__init__(name, **kwargs)
        p = common.declare_parameters(self, PARAMETERS, "camera_node")
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
        if source == "topic":
            if p["input_transport"] == "compressed":
                self.create_subscription(CompressedImage, "image_raw/compressed", self.on_image, common.sensor_qos())
            elif p["input_transport"] == "raw":
                self.create_subscription(Image, "image_raw", self.on_image, common.sensor_qos())
            else:
                raise ValueError(f"camera_node: input_transport must be raw or compressed, got {p['input_transport']!r}")
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

    def on_image(self, msg) -> None:
        self.frames_in += 1
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
