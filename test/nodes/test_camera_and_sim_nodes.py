"""camera_node and sim_node as processes.

camera_node: a driver's image_raw (bgr8, mono8, compressed JPEG) comes out as the
observation produced by THE preprocessing function, stamp kept; a bad encoding is
dropped with an error naming it; image_raw is read reliable unless the driver
publishes best effort. sim_node: joint trajectories move the simulated arm
(joint_states follow), camera images come at the configured size, reset works."""
import numpy as np
import pytest

from crl_ros.nodes import common
from crl_ros.robot import camera, kinematics


@pytest.fixture
def observations(ros):
    from sensor_msgs.msg import Image
    received = []
    sub = ros.node.create_subscription(Image, "observation", received.append, common.sensor_qos())
    yield received
    ros.node.destroy_subscription(sub)


def _publish_until_observed(ros, pub, msg, observations, proc):
    ros.wait_for(lambda: pub.get_subscription_count() > 0, 20, "camera_node subscribed")
    for _ in range(100):  # best effort: repeat until one gets through
        pub.publish(msg)
        ros.spin_for(0.05)
        if observations:
            return
    raise AssertionError(f"no observation\n{proc.log()}")


def _frame():
    rng = np.random.default_rng(5)
    return rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["bgr8", "mono8", "rgba8"])
def test_camera_node_ingests_raw_images(procs, observations, encoding):
    from sensor_msgs.msg import Image
    ros = procs
    proc = ros.start("camera_node", crop=[20, 0, 140, 120], size=[48, 48])
    pub = ros.node.create_publisher(Image, "image_raw", common.sensor_qos())
    frame = _frame()
    if encoding == "mono8":
        frame[:, :, 1] = frame[:, :, 2] = frame[:, :, 0]
    channels = {"bgr8": frame[:, :, ::-1], "mono8": frame[:, :, :1],
                "rgba8": np.concatenate([frame, np.zeros((120, 160, 1), np.uint8)], 2)}[encoding]
    data = np.ascontiguousarray(channels)
    msg = Image(height=120, width=160, encoding=encoding, step=160 * data.shape[2])
    msg.data = data.tobytes()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1234, 5678
    _publish_until_observed(ros, pub, msg, observations, proc)
    obs = observations[-1]
    assert (obs.header.stamp.sec, obs.header.stamp.nanosec) == (1234, 5678)
    np.testing.assert_array_equal(common.image_from_msg(obs), camera.preprocess_image(frame, (20, 0, 140, 120), (48, 48)))
    ros.node.destroy_publisher(pub)


def test_camera_node_compressed_input_and_bad_encoding(procs, observations):
    from sensor_msgs.msg import CompressedImage, Image
    ros = procs
    proc = ros.start("camera_node", input_transport="compressed", crop=[0, 0, 0, 0], size=[30, 40])
    pub = ros.node.create_publisher(CompressedImage, "image_raw/compressed", common.sensor_qos())
    frame = _frame()
    msg = CompressedImage(format="jpeg")
    msg.data = camera.encode_compressed(frame, "jpeg", quality=95)
    _publish_until_observed(ros, pub, msg, observations, proc)
    obs = common.image_from_msg(observations[-1])
    expected, _ = camera.preprocess_compressed(bytes(msg.data), "jpeg", None, (30, 40))  # as crl convert does
    np.testing.assert_array_equal(obs, expected)
    # raw transport with an unsupported encoding: dropped, and the log names it
    proc2 = ros.start("camera_node", name="camera_yuv")
    raw_pub = ros.node.create_publisher(Image, "image_raw", common.sensor_qos())
    ros.wait_for(lambda: raw_pub.get_subscription_count() > 0, 20, "second camera_node subscribed")
    bad = Image(height=2, width=2, encoding="yuv422", step=4)
    bad.data = bytes(8)
    ros.wait_for(lambda: (raw_pub.publish(bad), "yuv422" in proc2.log())[1], 10, "error naming yuv422", procs=[proc2])
    ros.node.destroy_publisher(pub)
    ros.node.destroy_publisher(raw_pub)


def test_camera_node_subscribes_reliable_unless_the_driver_is_best_effort(procs, observations):
    """image_raw is read reliable (a best-effort reader in another process loses whole
    large frames to one late fragment); a best-effort driver does not match that, so
    camera_node subscribes again best effort and says so; input_reliability fixes it."""
    from rclpy.qos import ReliabilityPolicy
    from sensor_msgs.msg import Image
    ros = procs
    # a topic of its own: a late-joining process may still hear of the best-effort image_raw
    # writers the earlier tests destroyed (discovery history), which would trigger the fallback early
    topic = {"image_raw": "qos_image_raw"}
    proc = ros.start("camera_node", remap=topic, crop=[0, 0, 0, 0], size=[48, 48])
    fixed = ros.start("camera_node", name="camera_best_effort", remap=topic, input_reliability="best_effort")

    def reliability(node_name):
        infos = [i for i in ros.node.get_subscriptions_info_by_topic("/qos_image_raw") if i.node_name == node_name]
        return infos[0].qos_profile.reliability if infos else None

    ros.wait_for(lambda: reliability("camera_node") and reliability("camera_best_effort"), 30, "subscriptions")
    assert reliability("camera_node") == ReliabilityPolicy.RELIABLE
    assert reliability("camera_best_effort") == ReliabilityPolicy.BEST_EFFORT
    msg = common.image_msg(_frame())
    reliable_pub = ros.node.create_publisher(Image, "qos_image_raw", common.frame_qos())
    _publish_until_observed(ros, reliable_pub, msg, observations, proc)
    assert reliability("camera_node") == ReliabilityPolicy.RELIABLE
    ros.node.destroy_publisher(reliable_pub)
    best_effort_pub = ros.node.create_publisher(Image, "qos_image_raw", common.sensor_qos())
    ros.wait_for(lambda: reliability("camera_node") == ReliabilityPolicy.BEST_EFFORT, 20,
                 "camera_node subscribing best effort", procs=[proc])
    observations.clear()
    _publish_until_observed(ros, best_effort_pub, msg, observations, proc)
    assert "the publisher is best effort" in proc.log()
    assert "the publisher is best effort" not in fixed.log()
    ros.node.destroy_publisher(best_effort_pub)


def test_sim_node_follows_joint_trajectories(procs):
    from sensor_msgs.msg import Image, JointState
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
    ros = procs
    proc = ros.start("sim_node", task="reach", image_width=160, image_height=120, camera_rate_hz=10.0)
    states, images = [], []
    ros.node.create_subscription(JointState, "joint_states", states.append, common.sensor_qos(depth=5))
    ros.node.create_subscription(Image, "image_raw", images.append, common.sensor_qos())
    arm_pub = ros.node.create_publisher(JointTrajectory, "arm_controller/joint_trajectory", common.reliable_qos())
    ros.wait_for(lambda: states and images, 60, "joint_states and image_raw", procs=[proc])
    assert list(states[-1].name) == kinematics.JOINT_STATE_NAMES
    assert (images[-1].width, images[-1].height, images[-1].encoding) == (160, 120, "rgb8")
    q0 = np.array(states[-1].position[:6])
    target = q0 + np.array([0.3, 0.0, 0.0, 0.0, 0.0, 0.0])
    ros.wait_for(lambda: arm_pub.get_subscription_count() > 0, 10, "sim_node subscribed")
    arm_pub.publish(JointTrajectory(joint_names=kinematics.JOINT_NAMES,
                                    points=[JointTrajectoryPoint(positions=list(target))]))
    ros.wait_for(lambda: abs(states[-1].position[0] - target[0]) < 0.02, 10, "waist reaching the target")
    before = common.image_from_msg(images[0])
    ros.spin_for(0.3)
    assert np.abs(common.image_from_msg(images[-1]).astype(int) - before).mean() > 0.5, "camera sees the arm move"
    reply = ros.call(Trigger, "reset")
    assert reply.success and "episode 1" in reply.message
    ros.wait_for(lambda: np.linalg.norm(np.array(states[-1].position[:6]) - target) > 0.1, 10,
                 "arm at the next episode's start pose after reset")


def test_camera_node_folder_source_publishes_raw_and_observation(procs, observations, tmp_path):
    from PIL import Image as PILImage
    from sensor_msgs.msg import Image
    ros = procs
    frame = _frame()
    PILImage.fromarray(frame).save(tmp_path / "a.png")
    raw = []
    sub = ros.node.create_subscription(Image, "image_raw", raw.append, common.sensor_qos())
    proc = ros.start("camera_node", source=f"folder:{tmp_path}", fps=10.0, crop=[20, 0, 140, 120], size=[24, 24])
    ros.wait_for(lambda: observations and raw, 20, "observation and image_raw from the folder", procs=[proc])
    np.testing.assert_array_equal(common.image_from_msg(raw[-1]), frame)
    np.testing.assert_array_equal(common.image_from_msg(observations[-1]),
                                  camera.preprocess_image(frame, (20, 0, 140, 120), (24, 24)))
    ros.node.destroy_subscription(sub)
    # a device source without OpenCV installed fails with an explanation, not a traceback
    try:
        import cv2  # noqa: F401
    except ImportError:
        bad = ros.start("camera_node", name="camera_dev", source="device:0")
        assert bad.proc.wait(30) == 1
        assert "opencv" in bad.log().lower()


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_sim_node_shuts_down_without_a_traceback(procs, how):
    """Ctrl-C (and SIGTERM) while sim_node renders and publishes: no RCLError from the
    simulator thread's publish, no EGLError from the renderer, exit code 0."""
    import signal
    from sensor_msgs.msg import CompressedImage, Image
    ros = procs
    proc = ros.start("sim_node", name=f"sim_{how.lower()}", task="reach", image_width=160, image_height=120)
    images, jpegs = [], []
    ros.node.create_subscription(Image, "image_raw", images.append, common.sensor_qos())
    ros.node.create_subscription(CompressedImage, "image_raw/compressed", jpegs.append, common.sensor_qos())
    ros.wait_for(lambda: len(images) > 5 and jpegs, 60, "sim_node rendering", procs=[proc])
    proc.proc.send_signal(getattr(signal, how))
    code = proc.wait_exit(60)
    log = proc.log()
    assert code == 0, log
    for bad in ("Traceback", "RCLError", "EGLError", "Exception in thread"):
        assert bad not in log, log


def test_sim_node_trajectory_callbacks_do_not_wait_for_the_simulator_thread(procs):
    """on_arm / on_gripper post their targets to the simulator thread and return: in the
    one-process graph they run on the executor every other node shares, and waiting there for
    a render in flight delayed camera_node and policy_node. The targets still apply in order,
    and a posted job that fails is logged without stopping the simulator thread."""
    import threading

    from rclpy.parameter import Parameter
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from crl_ros.nodes.sim_node import SimNode

    sim = SimNode("sim_post", context=procs.context,
                  parameter_overrides=[Parameter("image_width", value=160), Parameter("image_height", value=120)])
    release = threading.Event()
    try:
        sim.post(lambda: release.wait(60))  # the simulator thread is busy (say, a slow render)
        q = [0.2, -0.1, 0.1, 0.0, 0.3, 0.0]
        sim.on_arm(JointTrajectory(joint_names=kinematics.JOINT_NAMES, points=[JointTrajectoryPoint(positions=q)]))
        # Waiting for the simulator (the old `call`) would block until `release`: a 30 s timeout error.
        assert not release.is_set()
        release.set()
        assert np.allclose(sim.call(lambda: sim._targets[0]), q)
        sim.post(lambda: 1 / 0)
        assert sim.call(lambda: 42) == 42
    finally:
        release.set()
        sim.close()
        sim.destroy_node()
