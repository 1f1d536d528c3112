"""Point-mass suite: the env contract, walls, held-out goals, scripted demos, rollout helpers, GIFs."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from crl_ros.sim import pointmass as pm
from crl_ros.sim.rollout import (RandomActor, ScriptedActor, collect_demos, evaluate, mean_success, run_episode,
                                 side_by_side, write_gif)
from crl_ros.sim.suites import get_suite


def test_suite_interface():
    suite = get_suite("pointmass")
    assert suite is pm and pm.DEFAULT_TASK in pm.TASKS and pm.play_tasks
    env = pm.make_env(pm.DEFAULT_TASK, image_size=40, seed=1)
    obs, info = env.reset(seed=1)
    assert obs["image"].shape == (40, 40, 3) and obs["image"].dtype == np.uint8
    assert obs["state"].shape == (2,) and obs["state"].dtype == np.float32
    assert info["goal_image"].shape == (40, 40, 3) and info["success"] is False
    assert env.action_space.shape == (2,) and (env.action_space.low == -1).all()
    assert env.control_rate_hz > 0 and env.max_episode_steps > 0 and env.action_names == ["vx", "vy"]
    obs, reward, terminated, truncated, info = env.step(np.zeros(2))
    assert "success" in info and not terminated and not truncated
    with pytest.raises(ValueError, match="unknown pointmass task"):
        pm.make_env("fly")


def test_goal_image_is_the_point_at_the_goal_and_camera_shows_no_goal():
    env = pm.make_env("reach_top_left")
    obs, info = env.reset(seed=0)
    goal = tuple(info["goal"])
    # the camera draws only the point: two different starts give different images, same goal image
    assert not np.array_equal(obs["image"], info["goal_image"])
    obs2, info2 = env.reset(seed=0, options={"start": goal})
    assert np.array_equal(obs2["image"], info2["goal_image"]) and info2["success"]
    # images differ from the empty room only around the point
    empty = pm.Renderer(48).background.astype(np.uint8)
    changed = np.argwhere((obs["image"] != empty).any(-1))
    centre = changed.mean(0)
    x, y = obs["state"]
    assert abs(centre[1] - x * 48 + 0.5) < 1.5 and abs(centre[0] - (1 - y) * 48 + 0.5) < 1.5


def test_walls_block_the_point():
    x0, y0, x1, y1 = pm.WALLS[0]
    env = pm.make_env("reach_bottom_right")
    env.reset(seed=0, options={"start": (0.3, 0.2)})
    for _ in range(30):
        obs, *_ = env.step(np.array([1.0, 0.0]))
    x = obs["state"][0]
    assert x0 - pm.POINT_RADIUS - pm.MAX_STEP < x <= x0 - pm.POINT_RADIUS + 1e-6  # stopped at the wall's face
    for _ in range(30):  # sliding up along the wall still works
        obs, *_ = env.step(np.array([1.0, 1.0]))
    assert obs["state"][1] > y1
    positions = np.random.default_rng(0).uniform(0, 1, (2000, 2))
    free = pm.is_free(positions)
    inside_wall = (positions[:, 0] > x0) & (positions[:, 0] < x1) & (positions[:, 1] < y1)
    assert inside_wall.any() and not (free & inside_wall).any() and free.mean() > 0.5
    with pytest.raises(ValueError, match="inside a wall"):
        env.reset(options={"start": ((x0 + x1) / 2, y1 / 2)})


def test_training_goals_are_held_out_from_eval_goals():
    env = pm.make_env(pm.TRAIN_TASK)
    eval_goals = np.array(list(pm.EVAL_GOALS.values()))
    goals = []
    for seed in range(300):
        _, info = env.reset(seed=seed)
        goals.append(info["goal"])
    distances = np.linalg.norm(np.array(goals)[:, None] - eval_goals[None], axis=-1)
    assert distances.min() > pm.HELD_OUT_RADIUS > pm.SUCCESS_RADIUS
    assert np.array(goals).std(0).min() > 0.2  # spread over the room
    assert pm.TRAIN_TASK not in pm.TASKS and pm.play_tasks == [pm.TRAIN_TASK]


def test_eval_starts_are_fixed_per_seed():
    env = pm.make_env("reach_center")
    starts = [env.reset(seed=s)[0]["state"] for s in (3, 3, 4)]
    assert np.array_equal(starts[0], starts[1]) and not np.array_equal(starts[0], starts[2])
    r1 = evaluate("pointmass", "reach_center", RandomActor(0), episodes=3, seed=5)
    r2 = evaluate("pointmass", "reach_center", RandomActor(0), episodes=3, seed=5)
    assert r1 == r2


def test_scripted_expert_succeeds_and_random_does_not():
    scripted = evaluate("pointmass", "all", ScriptedActor("pointmass", seed=0), episodes=8, seed=0)
    random_ = evaluate("pointmass", "all", RandomActor(seed=0), episodes=8, seed=0)
    assert set(scripted) == set(pm.TASKS)
    assert all(r["success_rate"] >= 0.85 for r in scripted.values()), scripted
    assert mean_success(random_) <= 0.2, random_
    assert scripted["reach_top_right"]["mean_steps"] < 40


def test_run_episode_records():
    env = pm.make_env("reach_center", image_size=32)
    ep = run_episode(env, ScriptedActor("pointmass", seed=1), record=True, seed=2)
    assert ep["success"] and len(ep["images"]) == ep["steps"] + 1 == len(ep["frames"])
    assert ep["actions"].shape == (ep["steps"], 2) and np.abs(ep["actions"]).max() <= 1.0
    assert ep["images"].dtype == np.uint8 and ep["images"].shape[1:] == (32, 32, 3)


def test_collect_demos_is_deterministic_across_workers():
    serial = list(collect_demos("pointmass", "play", episodes=6, seed=7, image_size=24, workers=1))
    parallel = list(collect_demos("pointmass", "play", episodes=6, seed=7, image_size=24, workers=2))
    other = list(collect_demos("pointmass", "play", episodes=6, seed=8, image_size=24, workers=1))
    assert len(serial) == 6 and all(ep["task"] == pm.TRAIN_TASK for ep in serial)
    for a, b in zip(serial, parallel):
        assert np.array_equal(a["images"], b["images"]) and np.array_equal(a["actions"], b["actions"])
    assert not all(np.array_equal(a["images"][0], c["images"][0]) for a, c in zip(serial, other))
    assert np.mean([ep["success"] for ep in serial]) >= 0.8
    with pytest.raises(ValueError, match="unknown pointmass task"):
        list(collect_demos("pointmass", "nope", episodes=1))


def test_gif_has_goal_then_camera_side_by_side(tmp_path):
    frame = np.zeros((24, 24, 3), np.uint8)
    goal = np.full((48, 48, 3), 200, np.uint8)
    combined = side_by_side(goal, frame)
    # goal on the left (resized to the frame's height), white gap, camera on the right
    assert combined.shape == (24, 24 + 2 + 24, 3) and combined[-1, 0, 0] == 200 and combined[-1, -1, 0] == 0
    path = write_gif(tmp_path / "v" / "ep.gif", [combined, 255 - combined], min_height=96)
    with Image.open(path) as gif:
        assert gif.n_frames == 2 and gif.size == (50 * 4, 96)
    assert sorted(p.name for p in path.parent.iterdir()) == ["ep.gif"]
    evaluate("pointmass", "reach_center", ScriptedActor("pointmass"), episodes=1, video_path=tmp_path / "e.gif")
    with Image.open(tmp_path / "e.gif") as gif:
        assert gif.n_frames >= 3
        first = np.asarray(gif.convert("RGB"))
    # captions: yellow text on black at the top left of each panel ("goal", then "camera")
    width = first.shape[1]
    yellow = (first[:14, :, 0] > 200) & (first[:14, :, 1] > 200) & (first[:14, :, 2] < 80)
    assert yellow[:, : width // 4].any() and yellow[:, width // 2: 3 * width // 4].any()
    assert not yellow[:, width // 4: width // 2].any()


def test_sim_modules_do_not_import_torch():
    code = ("import sys, crl_ros.sim.pointmass, crl_ros.sim.rollout; "
            "bad = [m for m in ('torch', 'mujoco', 'rclpy') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
