"""`crl reach-goal` and `crl demo`: the verdict is decided once, at the first task_success,
and the exit code and the demo's count follow what was printed (with or without a GIF); the
GIF has a frame per action; inputs are checked before any node starts; no temporary goal
folder is left behind; the demo keeps the nodes' log lines in a file unless --verbose."""
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
    from std_msgs.msg import Bool, Float32, Float32MultiArray
    policy = _FakePolicy()
    monitor = reach_goal._Monitor(_FakeNode(), policy, record_frames=True, watch_success=True)
    monitor.on_success(Bool(data=True))  # before the goal was set: not this episode's
    assert not monitor.finished.is_set()
    monitor.start()
    monitor.on_goal(_image_msg(200))
    monitor.on_observation(_image_msg(10))
    monitor.on_observation(_image_msg(11))  # only the newest observation makes the next frame
    for count in range(1, 7):
        policy.counts["acted"] = count
        monitor.on_action(Float32MultiArray())
    monitor.on_success(Bool(data=True))
    assert monitor.finished.is_set()
    # the arm moves on, leaves the goal; the GIF is written: none of it undoes the success
    policy.counts["acted"] = 9
    monitor.on_success(Bool(data=False))
    seconds, actions, success = monitor.end(timeout=40.0)
    assert success and actions == 6 and 0 <= seconds < 40.0
    monitor.on_success(Bool(data=False))
    monitor.on_score(Float32(data=-5.0))
    assert monitor.score is None
    assert monitor.end(timeout=40.0) == (seconds, 6, True)
    # a frame per action: goal on the left, the camera's newest view on the right
    assert len(monitor.frames) == 6
    frame = monitor.frames[0]
    assert frame.shape == (48 * 4, 96 * 4, 3) and frame[-1, 0, 0] == 200 and frame[-1, -1, 0] == 11


def test_no_frame_without_a_goal_or_an_observation():
    from std_msgs.msg import Float32MultiArray
    monitor = reach_goal._Monitor(_FakeNode(), _FakePolicy(), record_frames=True, watch_success=True)
    monitor.on_action(Float32MultiArray())
    monitor.on_goal(_image_msg(200))
    monitor.on_action(Float32MultiArray())
    assert monitor.frames == []


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


def _env(offset: int, tmp: Path | None = None) -> dict:
    """A DDS domain of the test's own; ``tmp``: the temporary directory the command may use,
    to see what it leaves there."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(1 + (os.getpid() + offset) % 100),
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    if tmp is not None:
        tmp.mkdir(exist_ok=True)
        env["TMPDIR"] = str(tmp)
    return env


def _crl(*args, offset: int, timeout: float = 240, tmp: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crl_ros.cli", *args], env=_env(offset, tmp), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def _gif_frames_and_time(path: Path) -> tuple[int, int]:
    """(frames in the file, milliseconds in all). Pillow merges identical consecutive frames
    (an arm that did not move between two actions) into one longer frame: the time counts."""
    with Image.open(path) as im:
        durations = []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
        return im.n_frames, sum(durations)


def test_reach_goal_with_gif_exits_0_exactly_when_it_printed_success(tmp_path):
    """The reported case: a SUCCESS with --gif ended with exit code 1. Seed 100 of `reach`
    is reached by the bundled model in about a second. The GIF has one frame per action (it
    had fewer: a frame was taken at the first camera frame at least 0.2 s after the last, so
    each interval ran past 0.2 s by up to a camera period), and the goal rendered to a
    temporary folder leaves nothing behind."""
    gif = tmp_path / "reach.gif"
    result = _crl("reach-goal", "--sim", "--task", "reach", "--seed", "100", "--model", str(MODEL),
                  "--device", "cpu", "--timeout", "30", "--gif", str(gif), offset=61, tmp=tmp_path / "tmp")
    out = result.stdout + result.stderr
    verdicts = [line for line in result.stdout.splitlines() if line.startswith(("SUCCESS", "TIMEOUT"))]
    assert len(verdicts) == 1, out[-3000:]
    assert verdicts[0].startswith("SUCCESS: task reach (seed 100)"), out[-3000:]
    assert result.returncode == 0, out[-3000:]
    actions = int(verdicts[0].split(" actions")[0].split()[-1])
    saved = [line for line in result.stdout.splitlines() if line.startswith("saved ")]
    assert saved and "one per action" in saved[0], out[-3000:]
    assert int(saved[0].split()[1]) == actions, out[-3000:]
    with Image.open(gif) as im:
        assert im.size == (48 * 4 * 2, 48 * 4)
    frames, milliseconds = _gif_frames_and_time(gif)
    assert milliseconds == 200 * actions and frames <= actions  # 200 ms: policy_node's 5 Hz
    assert not list((tmp_path / "tmp").glob("crl_goal_*"))


def test_reach_goal_checks_its_inputs_before_any_node_starts(tmp_path):
    """A missing or unreadable model or goal image is said at once, before the sim and
    camera nodes start (their first log lines are the sign)."""
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    cases = [(["--sim", "--model", "/nonexistent.pt"], "model '/nonexistent.pt' not found"),
             (["--sim", "--model", str(tmp_path / "junk.pt")], "is not a crl_ros checkpoint"),
             (["--goal", str(tmp_path / "none.png"), "--model", str(MODEL)], "none.png does not exist"),
             (["--goal", str(tmp_path / "junk.png"), "--model", str(MODEL)], "not a readable image")]
    for offset, (argv, problem) in enumerate(cases):
        result = _crl("reach-goal", *argv, offset=90 + offset, timeout=120)
        out = result.stdout + result.stderr
        assert result.returncode == 2, out[-3000:]
        assert result.stderr.startswith("crl reach-goal: ") and problem in result.stderr, out[-3000:]
        assert "[INFO]" not in out and "Traceback" not in out, out[-3000:]


def test_demo_counts_the_episodes_verdicts(tmp_path):
    """Seed 100 is reached, seed 101 is not within 8 s: the demo says 1/2, writes both
    results, and exits 0 because it ran. Quietly: verdict lines and the table on the
    console, the nodes' log lines in OUT/logs/."""
    out_dir = tmp_path / "demo"
    result = _crl("demo", "--task", "reach", "--episodes", "2", "--seed", "100", "--timeout", "8", "--out", str(out_dir),
                  offset=67, tmp=tmp_path / "tmp")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    verdicts = [line.split(":")[0] for line in result.stdout.splitlines() if line.startswith(("SUCCESS", "TIMEOUT"))]
    assert len(verdicts) == 2, out[-3000:]
    report = json.loads((out_dir / "results.json").read_text())
    assert [e["verdict"] for e in report["episodes"]] == verdicts
    assert [e["seed"] for e in report["episodes"]] == [100, 101]
    assert report["tasks"] == {"reach": {"reached": verdicts.count("SUCCESS"), "episodes": 2}}
    assert report["seconds_in_all"] > 0
    reached = verdicts.count("SUCCESS")
    assert f"demo: {reached}/2 episodes reached their goal image" in result.stdout
    assert any(line.split()[:2] == ["reach", f"{reached}/2"] for line in result.stdout.splitlines()), out[-3000:]
    assert verdicts[0] == "SUCCESS", out[-3000:]
    for episode in report["episodes"]:
        assert Path(episode["gif"]).name == f"demo_reach_seed{episode['seed']}.gif"
        assert Path(episode["gif"]).exists() and episode["gif_frames"] == episode["actions"] > 0
        assert 0 < episode["seconds"] <= 8.0 + 1e-6
    # quiet: no node log line on the console; they are in the log file
    assert "[INFO]" not in out and "Traceback" not in out, out[-3000:]
    logged = "".join(f.read_text() for f in (out_dir / "logs").rglob("*.log"))
    assert "[sim_node]" in logged and "[policy_node]" in logged
    assert not list((tmp_path / "tmp").glob("crl_goal_*"))


def test_demo_summary_table_counts_successes_from_the_results():
    from crl_ros.commands.demo import summary_table
    results = {"reach": [reach_goal.ReachResult(True, "reach", 100, True, 1.13, 6, 1.8),
                         reach_goal.ReachResult(True, "reach", 101, False, 40.0, 200, 1.7),
                         reach_goal.ReachResult(True, "reach", 102, True, 1.24, 7, 1.9)],
               "push_block": [reach_goal.ReachResult(True, "push_block", 100, False, 40.0, 200, 0.1)]}
    text = summary_table(results, 40.0, "m.pt", 93.4)
    lines = text.splitlines()
    assert lines[0].startswith("demo: 2/4 episodes reached their goal image (sim seeds 100-102")
    assert "93 s in all" in lines[0] and lines[0].endswith("with m.pt")
    assert lines[1].split() == ["task", "reached", "to", "success", "(s)", "actions", "timed", "out", "(seed)"]
    assert lines[2].split() == ["reach", "2/3", "1.1-1.2", "6-7", "101"]
    assert lines[3].split() == ["push_block", "0/1", "-", "-", "100"]
    # the columns line up
    assert lines[2].index("2/3") == lines[1].index("reached") == lines[3].index("0/1")


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_an_interrupted_reach_goal_ends_without_a_traceback(tmp_path, sig):
    """Ctrl-C / SIGTERM in the middle of an episode of the one-process graph: the nodes are
    closed in order, `interrupted` and exit code 130, no traceback from the executor thread
    or from a service call on a shut-down context."""
    import signal
    import time
    env = _env(80 + (sig == "SIGTERM"), tmp_path / "tmp")
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
    assert not list((tmp_path / "tmp").glob("crl_goal_*"))
