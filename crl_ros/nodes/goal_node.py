"""goal_node: holds the goal image and publishes it latched on ``goal_image``.

- ``capture_goal`` (std_srvs/Trigger): the latest ``observation`` becomes the goal;
- ``clear_goal`` (std_srvs/Trigger): publishes an empty (0x0) image, meaning "no goal";
- parameter ``goal_image_path``: an image file (PNG/JPEG); settable at run time with a
  parameter service call (``ros2 param set /goal_node goal_image_path /x.png``). A
  frame of the raw camera size is cropped and resized exactly like camera_node does
  (same crop/size parameters); an image already of the observation size is used as is.
  A file that cannot be read refuses the parameter change with the reason.
"""
from __future__ import annotations

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from crl_ros.nodes import common
from crl_ros.robot import camera

PARAMETERS = [
    ("goal_image_path", "", "image file to use as the goal; empty = none (use capture_goal)"),
    ("crop", [0, 0, 0, 0], "crop for goal files of the raw camera size; keep equal to camera_node's"),
    ("size", [48, 48], "[height, width] of the goal image; keep equal to camera_node's"),
]


class GoalNode(Node):
    def __init__(self, name: str = "goal_node", **kwargs):
        super().__init__(name, **kwargs)
        p = common.declare_parameters(self, PARAMETERS, "goal_node")
        self.crop = common.crop_from_param(p["crop"])
        self.size = tuple(int(v) for v in p["size"])
        self.observation = None
        self.goal = None
        self.goal_source = ""
        self.goal_pub = self.create_publisher(Image, "goal_image", common.latched_qos())
        self.create_subscription(Image, "observation", self.on_observation, common.sensor_qos())
        self.create_service(Trigger, "capture_goal", self.on_capture)
        self.create_service(Trigger, "clear_goal", self.on_clear)
        self.add_on_set_parameters_callback(self.on_set_parameters)
        if p["goal_image_path"]:
            self.set_goal(self.load_goal_file(p["goal_image_path"]), f"file {p['goal_image_path']}")

    def on_observation(self, msg: Image) -> None:
        self.observation = msg

    def load_goal_file(self, path: str):
        try:
            image = camera.load_image_file(path)
        except FileNotFoundError:
            raise ValueError(f"goal image {path!r} does not exist") from None
        if image.shape[:2] == self.size:
            return image
        crop = self.crop
        if crop is not None and (crop[2] > image.shape[1] or crop[3] > image.shape[0]):
            crop = None  # a file smaller than the camera frame: resize only
        return camera.preprocess_image(image, crop, self.size)

    def set_goal(self, image, source: str, stamp=None) -> None:
        self.goal = image
        self.goal_source = source
        self.goal_pub.publish(common.image_msg(image, stamp or self.get_clock().now().to_msg(), "goal"))
        self.get_logger().info(f"goal set from {source}")

    def on_capture(self, request, response):
        if self.observation is None:
            response.success, response.message = False, "no observation received yet on 'observation'"
            return response
        try:
            image = common.image_from_msg(self.observation)
        except ValueError as exc:
            response.success, response.message = False, f"latest observation unusable: {exc}"
            return response
        self.set_goal(image, "capture_goal", self.observation.header.stamp)
        response.success, response.message = True, f"goal captured ({image.shape[1]}x{image.shape[0]})"
        return response

    def on_clear(self, request, response):
        self.goal = None
        self.goal_source = ""
        self.goal_pub.publish(common.empty_image_msg(self.get_clock().now().to_msg(), "goal"))
        response.success, response.message = True, "goal cleared"
        return response

    def on_set_parameters(self, params) -> SetParametersResult:
        for param in params:
            if param.name == "goal_image_path" and param.value:
                try:
                    image = self.load_goal_file(param.value)
                except ValueError as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
                self.set_goal(image, f"file {param.value}")
            elif param.name in ("crop", "size"):
                return SetParametersResult(successful=False, reason=f"{param.name} is fixed at start-up")
        return SetParametersResult(successful=True)


def main(args=None) -> int:
    return common.run_node(GoalNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
