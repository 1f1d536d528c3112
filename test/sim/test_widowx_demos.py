"""The WidowX suite through the `crl demos` / `crl eval` commands: datasets that validate."""
import json

import h5py
import numpy as np
import pytest

pytest.importorskip("mujoco")

from crl_ros.cli import main  # noqa: E402
from crl_ros.learning.dataset import load, validate  # noqa: E402
from crl_ros.robot import actions  # noqa: E402


@pytest.fixture(scope="module")
def play_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("widowx") / "play.h5"
    assert main(["demos", "--env", "widowx", "--play", "--episodes", "3", "--out", str(out), "--workers", "2"]) == 0
    return out


def test_play_demos_write_a_valid_dataset(play_data):
    out = play_data
    meta = validate(out)
    assert meta.image_shape == (48, 48, 3) and meta.action_names == actions.ACTION_NAMES
    data = load(out)
    assert data.num_episodes == 3
    # play episodes run to the step limit and act within the bounds
    assert np.all(np.diff(np.concatenate([[0], data.episode_ends])) == 101)
    moving = data.actions[data.transition_mask()]
    assert np.all(moving >= actions.ACTION_LOW - 1e-6) and np.all(moving <= actions.ACTION_HIGH + 1e-6)
    assert set(np.unique(moving[:, 6])) <= {0.0, 1.0} and len(np.unique(moving[:, 6])) == 2  # grasps happen
    with h5py.File(out) as f:
        assert json.loads(f.attrs["provenance"])["env"] == "widowx"


def test_task_demos_succeed_and_eval_prints_a_table(tmp_path, capsys):
    out = tmp_path / "pick.h5"
    assert main(["demos", "--env", "widowx", "--task", "pick_place_table", "--episodes", "2", "--out", str(out)]) == 0
    assert "the scripted expert succeeded in 2/2" in capsys.readouterr().out
    validate(out)
    assert main(["eval", "--env", "widowx", "--task", "open_drawer", "--policy", "scripted", "--episodes", "2",
                 "--video", str(tmp_path / "eval.gif")]) == 0
    assert "open_drawer" in capsys.readouterr().out
    assert (tmp_path / "eval.gif").stat().st_size > 0


def test_a_binary_gripper_opens_or_closes_fully_and_leaves_the_motion_alone(capsys):
    """BinaryGripper (crl eval --gripper binary for the baselines): the gripper command is
    snapped to 0 or 1 at 0.5; the six motion dimensions are the wrapped actor's."""
    from crl_ros.sim.rollout import BinaryGripper, RandomActor, run_episode
    from crl_ros.sim.widowx import WidowXEnv

    env = WidowXEnv("reach", max_episode_steps=6)
    try:
        raw = run_episode(env, RandomActor(seed=4), seed=11)["actions"]
        snapped = run_episode(env, BinaryGripper(RandomActor(seed=4)), seed=11)["actions"]
    finally:
        env.close()
    assert len(raw) == len(snapped) == 6 and len(np.unique(raw[:, 6])) == 6  # the random opening varies
    np.testing.assert_array_equal(snapped[:, :6], raw[:, :6])
    np.testing.assert_array_equal(snapped[:, 6], np.where(raw[:, 6] >= 0.5, 1.0, 0.0))
    assert main(["eval", "--env", "widowx", "--task", "reach", "--policy", "random", "--gripper", "binary",
                 "--episodes", "1", "--max-steps", "3"]) == 0
    assert "random policy (binary gripper)" in capsys.readouterr().out


def test_a_model_trained_on_play_data_runs_in_the_sim(play_data, tmp_path, capsys):
    pytest.importorskip("torch")
    run = tmp_path / "run"
    assert main(["train", "--data", str(play_data), "--algo", "stable_crl", "--out", str(run), "--steps", "3",
                 "--batch-size", "16", "--device", "cpu", "--no-progress",
                 "--set", "hidden_width=32", "hidden_depth=2", "encoder_channels=[8,8,8]"]) == 0
    assert main(["eval", "--env", "widowx", "--task", "reach", "--model", str(run / "model.pt"),
                 "--episodes", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "reach" in out and "continuous gripper" in out  # the authors' default
    assert main(["eval", "--env", "widowx", "--task", "reach", "--model", str(run / "model.pt"),
                 "--episodes", "1", "--device", "cpu", "--gripper", "binary", "--max-steps", "3"]) == 0
    assert "binary gripper" in capsys.readouterr().out


def test_task_demos_go_on_until_the_arm_is_back_at_rest_as_in_the_goal_image():
    """Goal images show the changed scene with the arm at rest: a demonstration that stopped
    at the first success (arm still at the handle) would never show that frame as a goal."""
    from crl_ros.sim import tasks, widowx
    from crl_ros.sim.rollout import DONE_HOLD_STEPS, ScriptedActor, run_episode

    env = widowx.make_env("open_drawer")
    short = run_episode(env, ScriptedActor("widowx", seed=3), seed=11)
    full = run_episode(env, ScriptedActor("widowx", seed=3), seed=11, until_done=True)
    assert short["success"] and full["success"]
    assert full["steps"] > short["steps"] + DONE_HOLD_STEPS
    assert np.linalg.norm(env.sim.ee_pose()[:3, 3] - tasks.START_EE) < 0.03
    assert env.sim.drawer_opening() > tasks.DRAWER_OPEN_ENOUGH  # and the drawer stays open
    env.close()


def test_demos_of_all_tasks_cycle_through_the_suite():
    from crl_ros.sim import widowx
    from crl_ros.sim.rollout import collect_demos, demo_tasks

    assert demo_tasks("widowx", "all") == widowx.TASKS
    episodes = list(collect_demos("widowx", "all", 3, seed=4))
    assert [ep["task"] for ep in episodes] == widowx.TASKS[:3]
    assert all(ep["success"] for ep in episodes)


def test_pointmass_demos_still_end_at_success():
    """Experts that cannot say they are done (point-mass) keep the old episode end."""
    from crl_ros.sim import pointmass
    from crl_ros.sim.rollout import ScriptedActor, run_episode

    env = pointmass.make_env(pointmass.TASKS[0])
    a = run_episode(env, ScriptedActor("pointmass", seed=1), seed=5)
    b = run_episode(env, ScriptedActor("pointmass", seed=1), seed=5, until_done=True)
    assert a["steps"] == b["steps"] and a["success"] == b["success"]
    np.testing.assert_array_equal(a["actions"], b["actions"])


def test_play_sometimes_returns_the_arm_to_rest_after_changing_the_scene():
    from crl_ros.sim import scripted, widowx

    env = widowx.make_env("play")
    env.reset(seed=2)
    rng = np.random.default_rng(0)
    endings = [plan[-1] is scripted.return_to_start
               for _ in range(40) for plan in scripted.feasible_play_plans(env.sim, rng)[1:]]
    env.close()
    assert 0.2 < np.mean(endings) < 0.8


def test_reach_near_demos_start_near_the_goal_and_are_never_evaluated(tmp_path):
    """`--task reach_near` (data only): reach goals from 3-9 cm away in any direction, the near
    misses `reach` demonstrations hardly show; the expert reaches them; evaluation ignores it."""
    from crl_ros.sim import tasks, widowx
    from crl_ros.sim.rollout import demo_tasks

    assert demo_tasks("widowx", "reach_near") == ["reach_near"]
    assert "reach_near" not in widowx.TASKS and "reach_near" in widowx.data_tasks
    with pytest.raises(ValueError, match="unknown widowx task 'reach_nearby'"):
        demo_tasks("widowx", "reach_nearby")
    rng = np.random.default_rng(0)
    task = tasks.get_task("reach_near")
    low, high = tasks.REACH_WORKSPACE
    offsets = []
    for _ in range(200):
        start, goal = task.sample(rng)
        assert np.all(goal.ee_xyz >= low) and np.all(goal.ee_xyz <= high)
        assert np.all(start.ee_xyz >= low) and np.all(start.ee_xyz <= high)
        offsets.append(start.ee_xyz - goal.ee_xyz)
    offsets = np.array(offsets)
    distances = np.linalg.norm(offsets, axis=1)
    assert distances.max() <= 0.09 + 1e-9 and np.median(distances) > 0.04  # clipping only shortens
    # every direction, not one approach line (as `reach` from the rest pose is): each axis both ways
    assert np.all((offsets > 0.005).mean(0) > 0.2) and np.all((offsets < -0.005).mean(0) > 0.2)
    out = tmp_path / "near.h5"
    assert main(["demos", "--env", "widowx", "--task", "reach_near", "--episodes", "6", "--seed", "1",
                 "--out", str(out)]) == 0
    validate(out)
    data = load(out)
    assert data.num_episodes == 6
    with h5py.File(out) as f:
        assert json.loads(f.attrs["provenance"])["task"] == "reach_near"
