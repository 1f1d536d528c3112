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


def test_an_episode_without_messages_is_not_kept(procs, tmp_path):
    from pathlib import Path
    from std_srvs.srv import Trigger
    ros = procs
    ros.start("recorder_node", output_dir=str(tmp_path), topics=["never_published"])
    started = ros.call(Trigger, "start_episode", retry=False)
    assert started.success and Path(started.message).exists()
    reply = ros.call(Trigger, "end_episode", retry=False)
    assert not reply.success and "deleted the empty bag" in reply.message
    assert not Path(started.message).exists() and not list(tmp_path.glob("episode_*"))


# --- `crl record` without --sim: the recorder on live topics, driven without a terminal ----

def _crl_record(ros, *args, stdin=None):
    import subprocess
    import sys
    return subprocess.Popen([sys.executable, "-m", "crl_ros.cli", "record", *args], env=ros.env, stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_crl_record_with_stdin_closed_quits_and_keeps_no_bag(procs, tmp_path):
    import subprocess
    proc = _crl_record(procs, "--out", str(tmp_path / "bags"), stdin=subprocess.DEVNULL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    assert "no episode was saved" in err and "terminate called" not in err
    assert not list((tmp_path / "bags").glob("episode_*"))


def test_crl_record_duration_deletes_an_empty_episode(procs, tmp_path):
    proc = _crl_record(procs, "--out", str(tmp_path / "bags"), "--topics", "nobody_publishes", "--duration", "0.5")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    assert "deleted the empty bag" in out and "no episode was saved" in err
    assert not list((tmp_path / "bags").glob("episode_*"))


def test_crl_record_driven_through_a_pipe_then_sigterm(procs, publishers, tmp_path):
    import subprocess
    import threading
    ros = procs
    image_pub, action_pub = publishers
    status, sub = _status_listener(ros)
    proc = _crl_record(ros, "--out", str(tmp_path / "bags"), "--topics", "image_raw", "action",
                       stdin=subprocess.PIPE)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        _wait_subscribed(ros, status)
        proc.stdin.write("\n")  # start
        proc.stdin.flush()
        ros.wait_for(lambda: any(line.startswith("recording to ") for line in lines), 20, "episode 1 started")
        _send(ros, image_pub, action_pub, 6, 0)
        ros.spin_for(0.3)
        proc.stdin.write("\n")  # end
        proc.stdin.flush()
        ros.wait_for(lambda: any(line.startswith("saved ") for line in lines), 20, "episode 1 saved")
        proc.stdin.write("\n")  # episode 2, ended by SIGTERM
        proc.stdin.flush()
        ros.wait_for(lambda: sum(line.startswith("recording to ") for line in lines) == 2, 20, "episode 2 started")
        _send(ros, image_pub, action_pub, 4, 100)
        ros.spin_for(0.3)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        ros.node.destroy_subscription(sub)
    reader.join(5)
    err = proc.stderr.read()
    assert proc.returncode == 130, "".join(lines) + err
    assert "terminate called" not in err
    saved = [line.split()[1] for line in lines if line.startswith("saved ")]
    assert len(saved) == 2, "".join(lines)
    counts = []
    for bag in saved:
        with BagReader(bag) as reader_:
            counts.append(reader_.topics()["/action"].count)
    assert counts == [6, 4]
    assert sorted(str(p) for p in (tmp_path / "bags").glob("episode_*")) == sorted(saved)


# --- the camera of sim recordings: JPEG image_raw/compressed by default, raw on request ----

def test_image_transport_compressed_records_the_compressed_twin_of_image_raw():
    from crl_ros.nodes.recorder_node import recorded_topics
    topics = ["image_raw", "wx250s/camera/image_raw", "/cam/image_raw/", "image_raw/compressed", "joint_states",
              "action", ""]
    assert recorded_topics(topics, "raw") == topics[:-1]
    assert recorded_topics(topics, "compressed") == [
        "image_raw/compressed", "wx250s/camera/image_raw/compressed", "/cam/image_raw/compressed", "joint_states",
        "action"]
    with pytest.raises(ValueError, match="image_transport"):
        recorded_topics(topics, "theora")


def test_sim_node_jpeg_frames_are_the_bag_writers():
    from crl_ros.bags import writer
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    msg = common.jpeg_image_msg(frame, frame_id="camera", quality=90)
    assert msg.format == common.JPEG_FORMAT == writer.JPEG_FORMAT
    assert bytes(msg.data) == bytes(writer.make_jpeg_image(frame, 0, quality=90).data)


def test_crl_record_sim_stores_jpeg_and_converts_like_raw(procs, tmp_path):
    """`crl record --sim` records image_raw/compressed (JPEG) and not image_raw; with
    ``--image-transport raw`` and both topics asked for, one recording holds both, and they
    convert to the same actions and to images within JPEG error."""
    import subprocess
    from crl_ros.bags.convert import ConvertOptions, convert_bags
    from crl_ros.learning.dataset import load
    sim = ["--sim", "--episodes", "1", "--steps", "6", "--task", "reach", "--image-size", "120", "160"]
    default = _crl_record(procs, *sim, "--out", str(tmp_path / "jpeg"), stdin=subprocess.DEVNULL)
    out, err = default.communicate(timeout=120)
    assert default.returncode == 0, out + err
    [bag] = sorted((tmp_path / "jpeg").glob("episode_*"))
    with BagReader(bag) as reader:
        topics = reader.topics()
        assert set(topics) == {"/image_raw/compressed", "/joint_states", "/action"}
        assert topics["/image_raw/compressed"].msgtype == "sensor_msgs/msg/CompressedImage"
        assert topics["/image_raw/compressed"].count >= 30  # ~30 Hz over the 1.4 s episode
        first = next(m for _, _, m in reader.messages(["/image_raw/compressed"]))
        assert first.format == common.JPEG_FORMAT
        assert bytes(first.data[:2]) == b"\xff\xd8"  # a JPEG file

    both = _crl_record(procs, *sim, "--out", str(tmp_path / "both"), "--image-transport", "raw",
                       "--topics", "image_raw", "image_raw/compressed", "joint_states", "action",
                       stdin=subprocess.DEVNULL)
    out, err = both.communicate(timeout=120)
    assert both.returncode == 0, out + err
    [bag] = sorted((tmp_path / "both").glob("episode_*"))
    datasets = {}
    for name in ("image_raw", "image_raw/compressed"):
        options = ConvertOptions(image_topic=name, crop=(20, 0, 140, 120), size=(48, 48), progress=False)
        datasets[name] = load(convert_bags([bag], tmp_path / f"{name.replace('/', '_')}.h5", options,
                                           log=lambda _: None))
    raw, jpeg = datasets["image_raw"], datasets["image_raw/compressed"]
    assert raw.num_frames == jpeg.num_frames == 6
    np.testing.assert_array_equal(jpeg.actions, raw.actions)
    error = np.abs(jpeg.images.astype(int) - raw.images.astype(int)).mean()
    assert error < 3.0, error


def test_a_topic_seen_first_through_a_subscriber_is_recorded_from_its_best_effort_publisher(procs, tmp_path):
    """arm_node subscribes to joint_states before sim_node (slow to start) publishes it: the
    recorder must not pick its QoS before it knows the publisher (a reliable reader never hears
    a best-effort writer, and the bag's joint_states came out empty)."""
    from sensor_msgs.msg import JointState
    from std_srvs.srv import Trigger
    ros = procs
    early_sub = ros.node.create_subscription(JointState, "late_joints", lambda m: None, common.sensor_qos())
    proc = ros.start("recorder_node", output_dir=str(tmp_path), topics=["late_joints"])
    status, sub = _status_listener(ros)
    ros.wait_for(lambda: status, 20, "recorder status", procs=[proc])
    ros.spin_for(1.5)  # the recorder sees /late_joints with only a subscriber for a while
    assert not any(status[-1]["topics"].values()), "subscribed before any publisher was known"
    pub = ros.node.create_publisher(JointState, "late_joints", common.sensor_qos(depth=5))
    _wait_subscribed(ros, status)
    reply = ros.call(Trigger, "start_episode", retry=False)
    assert reply.success
    for i in range(20):
        pub.publish(JointState(name=["waist"], position=[0.01 * i]))
        ros.spin_for(0.03)
    ros.spin_for(0.3)
    reply_end = ros.call(Trigger, "end_episode", retry=False)
    assert reply_end.success, reply_end.message
    with BagReader(reply.message) as reader:
        assert reader.topics()["/late_joints"].count >= 15
    for entity in (early_sub, sub):
        ros.node.destroy_subscription(entity)
    ros.node.destroy_publisher(pub)
