"""Ctrl-C (SIGINT) and SIGTERM of every node end without a traceback and with exit code 0
(issue 11): a node busy publishing, recording or waiting is stopped the same way a user or
`ros2 launch` stops it."""
import signal

import pytest

NODES = {
    "camera_node": dict(source="folder:{tmp}", fps=10.0, crop=[0, 0, 0, 0], size=[24, 24]),
    "goal_node": {},
    "policy_node": {},
    "arm_node": {},
    "recorder_node": dict(output_dir="{tmp}/bags", auto_start=True),
    "teleop_node": {},
    "trainer_node": dict(start_on_launch=False),
    "sim_node": dict(image_width=160, image_height=120),
}


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("node", sorted(NODES))
def test_node_stops_cleanly(procs, tmp_path, node, how):
    import numpy as np
    from PIL import Image
    ros = procs
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "frame.png")
    params = {k: (v.format(tmp=tmp_path) if isinstance(v, str) else v) for k, v in NODES[node].items()}
    proc = ros.start(node, name=f"{node}_{how.lower()}", **params)
    ros.wait_for(lambda: any(n.endswith(f"{node}_{how.lower()}") for n in ros.node.get_node_names()), 60,
                 f"{node} up", procs=[proc])
    ros.spin_for(1.0)  # let timers and threads run
    assert proc.alive(), proc.log()
    proc.proc.send_signal(getattr(signal, how))
    code = proc.proc.wait(60)
    log = proc.log()
    assert code == 0, log
    for bad in ("Traceback", "RCLError", "EGLError", "Exception in thread"):
        assert bad not in log, log
