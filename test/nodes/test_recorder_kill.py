"""recorder_node killed with SIGKILL mid-episode (no shutdown code runs): the bag on disk has
no metadata.yaml and no mcap summary, yet every message sent before the last flush is read
back (BagReader) and `crl bag repair` turns it into an ordinary indexed bag."""
import signal
import subprocess
import sys

import numpy as np
from rosbags.rosbag2 import Reader
from test_recorder_node import _send, _status_listener, _wait_subscribed, publishers  # noqa: F401  (fixture)

from crl_ros.bags.reader import BagReader
from crl_ros.nodes.recorder_node import FLUSH_INTERVAL_S


def test_an_episode_killed_hard_is_recovered(procs, publishers, tmp_path):  # noqa: F811
    from pathlib import Path

    from std_srvs.srv import Trigger
    ros = procs
    image_pub, action_pub = publishers
    proc = ros.start("recorder_node", output_dir=str(tmp_path), topics=["image_raw", "action"], storage="mcap")
    status, sub = _status_listener(ros)
    _wait_subscribed(ros, status)
    reply = ros.call(Trigger, "start_episode", retry=False)
    assert reply.success, reply.message
    _send(ros, image_pub, action_pub, 12, 40)
    ros.spin_for(3 * FLUSH_INTERVAL_S)  # a flush or more after the last message
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait(15)
    assert proc.proc.returncode == -signal.SIGKILL
    bag = Path(reply.message)
    assert [p.name for p in bag.iterdir()] == [f"{bag.name}.mcap"]  # killed: no metadata.yaml

    with BagReader(bag) as reader:
        assert any("ends without its summary and footer" in n for n in reader.notes), reader.notes
        topics = reader.topics()
        # reliable actions: all 12 sent arrive; best-effort images: nearly all on localhost
        assert topics["/action"].count == 12
        actions = [np.asarray(m.data) for _, _, m in reader.messages(["/action"])]
        np.testing.assert_allclose([a[0] for a in actions], [0.01 * i for i in range(12)], atol=1e-6)
        values = [int(np.asarray(m.data)[0]) for _, _, m in reader.messages(["/image_raw"])]
        assert 9 <= len(values) <= 12 and values == sorted(set(values)) and set(values) <= set(range(40, 52))

    repaired = tmp_path / "repaired"
    result = subprocess.run([sys.executable, "-m", "crl_ros.cli", "bag", "repair", str(bag), str(repaired),
                             "--quiet"], capture_output=True, text=True, env=ros.env, timeout=120)
    assert result.returncode == 0, result.stderr
    with Reader(repaired) as r:  # the ordinary reader, through the new metadata.yaml
        assert r.message_count == 12 + len(values)
    ros.node.destroy_subscription(sub)
