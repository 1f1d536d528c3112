"""recorder_node as a process: one bag per episode via start/end_episode, readable by
BagReader with the messages sent; an episode open at Ctrl-C or SIGTERM is closed and
complete."""
import json
import signal

import numpy as np
import pytest

from crl_ros.bags.reader import BagReader
from crl_ros.nodes import common


@pytest.fixture
def publishers(ros):
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float32MultiArray
    image_pub = ros.node.create_publisher(Image, "image_raw", common.sensor_qos())
    action_pub = ros.node.create_publisher(Float32MultiArray, "action", common.reliable_qos())
    yield image_pub, action_pub
    ros.node.destroy_publisher(image_pub)
    ros.node.destroy_publisher(action_pub)


def _status_listener(ros):
    from std_msgs.msg import String
    status = []
    sub = ros.node.create_subscription(String, "recorder_status", lambda m: status.append(json.loads(m.data)),
                                       common.reliable_qos())
    return status, sub


def _send(ros, image_pub, action_pub, n, value):
    for i in range(n):
        image = np.full((6, 8, 3), (value + i) % 256, np.uint8)
        image_pub.publish(common.image_msg(image, ros.node.get_clock().now().to_msg()))
        action_pub.publish(common.action_msg([0.01 * i, 0, 0, 0, 0, 0, 1]))
        ros.spin_for(0.03)


def _wait_subscribed(ros, status):
    ros.wait_for(lambda: status and all(status[-1]["topics"].values()), 20, "recorder subscribed to every topic")


def test_one_bag_per_episode(procs, publishers, tmp_path):
    from std_srvs.srv import Trigger
    ros = procs
    image_pub, action_pub = publishers
    ros.start("recorder_node", output_dir=str(tmp_path), topics=["image_raw", "action"], storage="mcap")
    status, sub = _status_listener(ros)
    _wait_subscribed(ros, status)

    _send(ros, image_pub, action_pub, 5, 200)  # before any episode: not recorded
    bags = []
    for episode in range(2):
        reply = ros.call(Trigger, "start_episode", retry=False)
        assert reply.success, reply.message
        assert not ros.call(Trigger, "start_episode", retry=False).success  # one at a time
        _send(ros, image_pub, action_pub, 10, 10 * episode)
        ros.spin_for(0.3)
        reply = ros.call(Trigger, "end_episode", retry=False)
        assert reply.success, reply.message
        bags.append(reply.message)
    assert not ros.call(Trigger, "end_episode", retry=False).success

    assert len(set(bags)) == 2
    for episode, bag in enumerate(bags):
        with BagReader(bag) as reader:
            topics = reader.topics()
            assert set(topics) == {"/image_raw", "/action"}
            # reliable actions: all 10 arrive; best-effort images: nearly all on localhost
            assert topics["/action"].count == 10
            assert 8 <= topics["/image_raw"].count <= 10
            values = [int(np.asarray(m.data)[0]) for _, _, m in reader.messages(["/image_raw"])]
            assert values[-1] == 10 * episode + 9 and all(v >= 10 * episode for v in values)
    ros.node.destroy_subscription(sub)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_open_episode_is_saved_on_shutdown(procs, publishers, tmp_path, sig):
    from std_srvs.srv import Trigger
    ros = procs
    image_pub, action_pub = publishers
    proc = ros.start("recorder_node", output_dir=str(tmp_path), topics=["image_raw", "action"],
                     storage="sqlite3", compression="zstd")
    status, sub = _status_listener(ros)
    _wait_subscribed(ros, status)
    reply = ros.call(Trigger, "start_episode", retry=False)
    assert reply.success
    _send(ros, image_pub, action_pub, 8, 0)
    ros.spin_for(0.3)
    proc.proc.send_signal(sig)
    proc.proc.wait(15)
    assert "closed" in proc.log(), proc.log()
    with BagReader(reply.message) as reader:
        assert reader.topics()["/action"].count == 8
        assert reader._reader.compression_mode == "message"
    ros.node.destroy_subscription(sub)
