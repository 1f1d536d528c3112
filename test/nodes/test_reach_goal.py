"""`crl reach-goal` and `crl demo`: the verdict is decided once, at the first task_success,
and the exit code and the demo's count follow what was printed (with or without a GIF)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crl_ros.nodes import reach_goal_bringup as reach_goal

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "widowx_stable_crl.pt"


class _FakeNode:
    def create_subscription(self, *args, **kwargs):
        return None


class _FakePolicy:
    def __init__(self):
        self.counts = {"acted": 0}


def _image_msg(value: int):
    from crl_ros.nodes import common
    return common.image_msg(np.full((48, 48, 3), value, np.uint8))


def test_the_first_task_success_decides_and_later_messages_change_nothing():
    from std_msgs.msg import Bool, Float32
    policy = _FakePolicy()
    monitor = reach_goal._Monitor(_FakeNode(), policy, record_frames=True, watch_success=True)
    monitor.on_success(Bool(data=True))  # before the goal was set: not this episode's
    assert not monitor.finished.is_set()
    monitor.start()
    monitor.on_goal(_image_msg(200))
    monitor.on_observation(_image_msg(10))
    policy.counts["acted"] = 6
    monitor.on_success(Bool(data=True))
    assert monitor.finished.is_set()
    # the arm moves on, leaves the goal; the GIF is written: none of it undoes the success
    policy.counts["acted"] = 9
    monitor.on_success(Bool(data=False))
    seconds, actions, success = monitor.end(timeout=40.0)
    assert success and actions == 6 and 0 <= seconds < 40.0
    monitor.on_success(Bool(data=False))
    monitor.on_score(Float32(data=-5.0))
    monitor._last_frame = -1.0
    monitor.on_observation(_image_msg(20))
    assert len(monitor.frames) == 1 and monitor.score is None
    assert monitor.end(timeout=40.0) == (seconds, 6, True)
    # the GIF frame: goal on the left, camera on the right
    frame = monitor.frames[0]
    assert frame.shape == (48 * 4, 96 * 4, 3) and frame[-1, 0, 0] == 200 and frame[-1, -1, 0] == 10


def test_without_success_the_episode_times_out():
    policy = _FakePolicy()
    monitor = reach_goal._Monitor(_FakeNode(), policy, record_frames=False, watch_success=True)
    monitor.start()
    policy.counts["acted"] = 3
    seconds, actions, success = monitor.end(timeout=0.0)
    assert (seconds, actions, success) == (0.0, 3, False)


@pytest.mark.parametrize("success, sim, verdict, code", [(True, True, "SUCCESS", 0), (False, True, "TIMEOUT", 1),
                                                         (False, False, "STOPPED", 0)])
def test_exit_code_follows_the_verdict(success, sim, verdict, code):
    result = reach_goal.ReachResult(sim=sim, task="reach" if sim else None, seed=1 if sim else None,
                                    success=success, seconds=2.0, actions=10, goal_score=1.5)
    assert result.verdict == verdict and result.exit_code == code
    assert result.summary().startswith(f"{verdict}: ") and "10 actions" in result.summary()
    assert result.as_dict()["verdict"] == verdict


def _env(offset: int) -> dict:
    return dict(os.environ, ROS_DOMAIN_ID=str(1 + (os.getpid() + offset) % 100),
                ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")


def _crl(*args, offset: int, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crl_ros.cli", *args], env=_env(offset), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_reach_goal_with_gif_exits_0_exactly_when_it_printed_success(tmp_path):
    """The reported case: a SUCCESS with --gif ended with exit code 1. Seed 100 of `reach`
    is reached by the bundled model in about a second."""
    gif = tmp_path / "reach.gif"
    result = _crl("reach-goal", "--sim", "--task", "reach", "--seed", "100", "--model", str(MODEL),
                  "--device", "cpu", "--timeout", "30", "--gif", str(gif), offset=61)
    out = result.stdout + result.stderr
    verdicts = [line for line in result.stdout.splitlines() if line.startswith(("SUCCESS", "TIMEOUT"))]
    assert len(verdicts) == 1, out[-3000:]
    assert verdicts[0].startswith("SUCCESS: task reach (seed 100)"), out[-3000:]
    assert result.returncode == 0, out[-3000:]
    saved = [line for line in result.stdout.splitlines() if line.startswith("saved ")]
    frames = int(saved[0].split()[1])
    with Image.open(gif) as im:
        assert im.size == (48 * 4 * 2, 48 * 4)
        # Pillow merges identical consecutive frames into one longer frame (an arm that did not
        # move between two frames), so count the GIF's time: 200 ms per saved frame.
        durations = []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
        assert sum(durations) == 200 * frames and im.n_frames <= frames


def test_demo_counts_the_episodes_verdicts(tmp_path):
    """Seed 100 is reached, seed 101 is not within 8 s: the demo says 1/2, writes both
    results, and exits 0 because it ran."""
    out_dir = tmp_path / "demo"
    result = _crl("demo", "--task", "reach", "--episodes", "2", "--seed", "100", "--timeout", "8", "--out", str(out_dir),
                  offset=67)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    verdicts = [line.split(":")[0] for line in result.stdout.splitlines() if line.startswith(("SUCCESS", "TIMEOUT"))]
    assert len(verdicts) == 2, out[-3000:]
    report = json.loads((out_dir / "results.json").read_text())
    assert [e["verdict"] for e in report["episodes"]] == verdicts
    assert [e["seed"] for e in report["episodes"]] == [100, 101]
    assert report["tasks"] == {"reach": {"reached": verdicts.count("SUCCESS"), "episodes": 2}}
    reached = verdicts.count("SUCCESS")
    assert f"demo: {reached}/2 episodes reached their goal image" in result.stdout
    assert verdicts[0] == "SUCCESS", out[-3000:]
    for episode in report["episodes"]:
        assert Path(episode["gif"]).exists() and episode["gif_frames"] > 0
        assert episode["actions"] > 0 and 0 < episode["seconds"] <= 8.0 + 1e-6


def test_demo_summary_counts_successes_from_the_results():
    from crl_ros.commands.demo import summarize
    results = [reach_goal.ReachResult(True, "reach", 100, True, 1.13, 6, 1.8),
               reach_goal.ReachResult(True, "reach", 101, False, 40.0, 200, 1.7),
               reach_goal.ReachResult(True, "reach", 102, True, 1.24, 7, 1.9)]
    text = summarize(results, "reach", 40.0, "m.pt")
    assert text.startswith("demo: 2/3 episodes reached their goal image (task reach, sim seeds 100-102")
    assert "to success: 1.1-1.2 s, 6-7 policy actions" in text and "timed out: seed 101" in text
    assert "sim seed 101," in summarize(results[1:2], "reach", 40.0, "m.pt")
    assert "timed out" not in summarize(results[:1], "reach", 40.0, "m.pt")


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_an_interrupted_reach_goal_ends_without_a_traceback(tmp_path, sig):
    """Ctrl-C / SIGTERM in the middle of an episode of the one-process graph: the nodes are
    closed in order, `interrupted` and exit code 130, no traceback from the executor thread
    or from a service call on a shut-down context."""
    import signal
    import time
    env = _env(80 + (sig == "SIGTERM"))
    proc = subprocess.Popen([sys.executable, "-m", "crl_ros.cli", "reach-goal", "--sim", "--task", "push_block",
                             "--seed", "101", "--model", str(MODEL), "--device", "cpu", "--timeout", "60"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 120
    for line in proc.stdout:  # wait until the episode runs
        lines.append(line)
        if line.startswith("goal:") or time.monotonic() > deadline:
            break
    time.sleep(2.0)
    proc.send_signal(getattr(signal, sig))
    out, _ = proc.communicate(timeout=60)
    log = "".join(lines) + out
    assert proc.returncode == 130, log[-3000:]
    assert "interrupted" in out and "Traceback" not in log and "RCLError" not in log, log[-3000:]
