"""Recording a demonstration by gamepad, end to end: a synthetic joy_node -> teleop_node ->
arm_node -> sim_node, recorder_node started and stopped by the pad's Start / Back buttons,
and `crl convert`'s convert_bags: the dataset's actions are the ones teleop_node commanded,
and the arm moved the way they say."""
import numpy as np

from crl_ros.bags.convert import ConvertOptions, convert_bags
from crl_ros.learning import dataset as ds
from crl_ros.nodes import common
from crl_ros.robot import kinematics
from crl_ros.robot.actions import MAX_TRANSLATION
from test_teleop_node import FakeJoy


def test_a_gamepad_demonstration_becomes_a_dataset_of_its_actions(procs, tmp_path):
    import json
    from std_msgs.msg import Float32MultiArray, String

    ros = procs
    joy = FakeJoy(ros)
    commanded, status = [], []
    ros.node.create_subscription(Float32MultiArray, "action", lambda m: commanded.append(np.asarray(m.data)),
                                 common.reliable_qos())
    ros.node.create_subscription(String, "recorder_status", lambda m: status.append(json.loads(m.data)),
                                 common.reliable_qos())
    ros.start("sim_node", task="reach", image_width=160, image_height=120, camera_rate_hz=10.0)
    ros.start("arm_node", start_enabled=True)
    ros.start("recorder_node", output_dir=str(tmp_path / "bags"), topics=["image_raw", "joint_states", "action"])
    teleop = ros.start("teleop_node", gamepad="xbox")          # config/teleop_node.yaml: 5 Hz, speed 0.5
    ros.wait_for(lambda: status and all(status[-1]["topics"].values()) and joy.pub.get_subscription_count(), 60,
                 "recorder subscribed to image_raw, joint_states, action; teleop_node to joy")

    def press(button):
        joy.set(**{button: 1})
        ros.spin_for(0.3)
        joy.set()

    press("start_episode")
    ros.wait_for(lambda: status[-1]["recording"], 15, "start_episode from the Start button", procs=[teleop])
    ros.spin_for(0.5)
    joy.set({1: 1.0, 0: 0.55}, deadman=1)                      # forward, and half left
    ros.spin_for(2.5)
    joy.set({1: 1.0}, deadman=1, gripper_close=1)              # forward, closing the gripper
    ros.spin_for(1.0)
    joy.set({1: 1.0})                                          # deadman released: no more actions
    ros.spin_for(0.6)
    press("end_episode")
    ros.wait_for(lambda: not status[-1]["recording"] and status[-1]["episodes"] == 1, 15,
                 "end_episode from the Back button", procs=[teleop])

    assert 12 <= len(commanded) <= 20, len(commanded)            # 3.5 s at 5 Hz
    first = np.array([0.5 * MAX_TRANSLATION, 0.5 * 0.5 * MAX_TRANSLATION, 0, 0, 0, 0, 1.0])
    last = np.array([0.5 * MAX_TRANSLATION, 0, 0, 0, 0, 0, 0.0])
    np.testing.assert_allclose(commanded[0], first, atol=1e-6)
    np.testing.assert_allclose(commanded[-1], last, atol=1e-6)

    bags = sorted((tmp_path / "bags").glob("episode_*"))
    assert len(bags) == 1
    out = convert_bags(bags, tmp_path / "demo.h5", ConvertOptions(size=(48, 48), progress=False), log=lambda m: None)
    data = ds.load(out)
    assert data.num_episodes == 1
    assert len(data.actions) == len(commanded)                  # one step per action
    # every transition's action is the commanded one (the last frame's row is padding: no transition)
    np.testing.assert_allclose(data.actions[:-1], np.asarray(commanded[:-1], dtype=np.float32), atol=1e-7)
    # the arm went forward and left, and the gripper closed
    x0, x1 = (kinematics.fk(data.proprio[i, :6])[:3, 3] for i in (0, -1))
    assert x1[0] - x0[0] > 0.1 and x1[1] - x0[1] > 0.02, (x0, x1)
    assert data.proprio[-1, 6] < data.proprio[0, 6] - 0.5
