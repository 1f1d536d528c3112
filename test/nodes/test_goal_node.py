"""goal_node as a process: capture_goal turns the current observation into the latched
goal_image; clear_goal empties it; goal_image_path loads a file at run time."""
import numpy as np

from crl_ros.nodes import common


def _publish_observation(ros, image):
    from sensor_msgs.msg import Image
    pub = getattr(ros, "_obs_pub", None)
    if pub is None:
        pub = ros._obs_pub = ros.node.create_publisher(Image, "observation", common.sensor_qos())
    pub.publish(common.image_msg(image, ros.node.get_clock().now().to_msg()))
    return pub


def _goal_listener(ros):
    from sensor_msgs.msg import Image
    received = []
    sub = ros.node.create_subscription(Image, "goal_image", received.append, common.latched_qos())
    return received, sub


def test_capture_goal_publishes_the_observation_latched(procs):
    from std_srvs.srv import Trigger
    ros = procs
    ros.start("goal_node")
    # Before any observation, capture_goal must refuse.
    reply = ros.call(Trigger, "capture_goal")
    assert not reply.success and "no observation" in reply.message

    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    pub = _publish_observation(ros, obs)
    ros.wait_for(lambda: pub.get_subscription_count() > 0, 20, "goal_node subscribing to observation")
    for _ in range(20):  # best effort: publish a few times until the node has one
        _publish_observation(ros, obs)
        ros.spin_for(0.05)
        reply = ros.call(Trigger, "capture_goal")
        if reply.success:
            break
    assert reply.success, reply.message

    # A subscriber that joins AFTER the capture still gets the goal (transient local).
    received, sub = _goal_listener(ros)
    ros.wait_for(lambda: received, 10, "latched goal_image")
    goal = common.image_from_msg(received[-1])
    np.testing.assert_array_equal(goal, obs)

    reply = ros.call(Trigger, "clear_goal")
    assert reply.success
    ros.wait_for(lambda: received[-1].width == 0, 10, "empty goal after clear_goal")
    ros.node.destroy_subscription(sub)


def test_goal_image_path_parameter_loads_and_preprocesses_a_file(procs, tmp_path):
    from PIL import Image as PILImage
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from crl_ros.robot import camera

    ros = procs
    ros.start("goal_node", crop=[80, 0, 560, 480], size=[48, 48])
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 320:] = (200, 10, 30)          # right half red-ish; the crop keeps x 80..560
    path = tmp_path / "goal.png"
    PILImage.fromarray(frame).save(path)

    def set_path(value):
        req = SetParameters.Request()
        req.parameters = [Parameter(name="goal_image_path", value=ParameterValue(
            type=ParameterType.PARAMETER_STRING, string_value=value))]
        return ros.call(SetParameters, "goal_node/set_parameters", req).results[0]

    received, sub = _goal_listener(ros)
    result = set_path(str(tmp_path / "missing.png"))
    assert not result.successful and "does not exist" in result.reason

    result = set_path(str(path))
    assert result.successful, result.reason
    ros.wait_for(lambda: received and received[-1].width == 48, 10, "goal from file")
    goal = common.image_from_msg(received[-1])
    np.testing.assert_array_equal(goal, camera.preprocess_image(frame, (80, 0, 560, 480), (48, 48)))
    assert goal[:, :20].max() == 0 and (goal[:, 30:] == (200, 10, 30)).all()
    ros.node.destroy_subscription(sub)
