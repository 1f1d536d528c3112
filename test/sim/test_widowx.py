"""The simulated WidowX 250: model, WidowXSim, tasks, gymnasium env and scripted experts."""
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mujoco")

from crl_ros.robot import actions, kinematics as kin  # noqa: E402
from crl_ros.sim import suites, widowx  # noqa: E402
from crl_ros.sim.widowx_sim import WidowXSim  # noqa: E402


@pytest.fixture(scope="module")
def sim():
    simulator = WidowXSim("reach")
    yield simulator
    simulator.close()


def test_ee_site_equals_forward_kinematics(sim):
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(kin.JOINT_LIMITS[:, 0], kin.JOINT_LIMITS[:, 1])
        sim.set_arm_joints(q)
        np.testing.assert_allclose(sim.arm_joints(), q)
        np.testing.assert_allclose(sim.ee_pose(), kin.fk(q), atol=1e-9)
    sim.reset(seed=0)


def test_model_joint_ranges_are_the_documented_limits(sim):
    for i, name in enumerate(kin.JOINT_NAMES):
        np.testing.assert_allclose(sim.model.joint(name).range, kin.JOINT_LIMITS[i], atol=1e-6)
    np.testing.assert_allclose(sim.model.joint("left_finger").range, [0.015, 0.037])


@pytest.mark.parametrize("size", [48, 64, 128])
def test_renders_at_several_sizes(sim, size):
    image = sim.render(size, size)
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    assert image.std() > 10  # a scene, not a blank frame
    assert sim.render(size, 2 * size, camera="scene").shape == (2 * size, size, 3)


def test_renders_a_full_camera_frame_and_rejects_unknown_tasks(sim):
    assert sim.render(640, 480).shape == (480, 640, 3)  # what the ROS sim_node publishes as image_raw
    with pytest.raises(ValueError, match="unknown widowx task"):
        sim.reset("juggle")


def test_joint_state_and_targets_beyond_the_limits_stay_within_them(sim):
    sim.reset(seed=0)
    names, positions = sim.joint_state()
    assert names == ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate",
                     "gripper", "left_finger", "right_finger"]
    assert positions.shape == (9,)
    # waist and wrist_angle asked beyond their upper limits, in a pose that hits nothing
    sim.set_joint_targets(np.array([4.0, -0.3, 0.0, 0.0, 3.0, 0.0]), 0.0)
    sim.step(1.5)
    q = sim.arm_joints()
    assert np.all(q >= kin.JOINT_LIMITS[:, 0] - 0.02) and np.all(q <= kin.JOINT_LIMITS[:, 1] + 0.02)
    np.testing.assert_allclose(q[[0, 4]], kin.JOINT_LIMITS[[0, 4], 1], atol=0.03)  # driven to the limits
    fingers = sim.joint_state()[1][7:]
    np.testing.assert_allclose(fingers, 0.015, atol=1e-3)  # closed on nothing
    assert not sim.holding_object()  # closing in the air grasps nothing
    sim.reset(seed=0)


def test_step_keeps_simulated_time_for_any_caller_rate(sim):
    sim.reset(seed=0)
    start = sim.time
    for _ in range(40):
        sim.step(0.004)  # shorter than a physics timestep
    assert sim.time - start == pytest.approx(0.16, abs=sim.model.opt.timestep)
    sim.step(0.2)
    assert sim.time - start == pytest.approx(0.36, abs=sim.model.opt.timestep)


def test_set_joint_targets_are_tracked(sim):
    sim.reset(seed=0)
    target = sim.arm_joints() + np.array([0.3, -0.2, 0.2, 0.1, 0.2, -0.3])
    sim.set_joint_targets(target, 1.0)
    sim.step(1.0)
    np.testing.assert_allclose(sim.arm_joints(), target, atol=0.02)
    sim.reset(seed=0)


@pytest.mark.parametrize("task", widowx.TASKS)
def test_success_is_false_at_start_and_true_at_the_goal_state(sim, task):
    for seed in range(3):
        sim.reset(task, seed=seed)
        assert not sim.success(), f"{task} seed {seed} starts solved"
        sim.set_scene(sim.goal_scene)
        assert sim.success(), f"{task} seed {seed}: goal state does not count as success"
    sim.reset("reach", seed=0)


def test_goal_image_shows_the_goal_and_leaves_the_state_alone(sim):
    sim.reset("open_drawer", seed=4)
    before = sim.render(48, 48)
    qpos = sim.data.qpos.copy()
    goal = sim.goal_image(48, 48)
    np.testing.assert_array_equal(sim.data.qpos, qpos)
    np.testing.assert_array_equal(sim.render(48, 48), before)
    assert np.abs(goal.astype(int) - before.astype(int)).sum() > 0  # the drawer is open there
    sim.set_scene(sim.goal_scene, settle=False)
    np.testing.assert_array_equal(sim.render(48, 48), goal)
    sim.reset("reach", seed=0)


def test_grasp_assist_holds_the_cube_only_while_closed():
    sim = WidowXSim("pick_place_table")
    sim.reset(seed=2)
    cube = sim.object_xyz()
    for xyz, gripper, seconds in [(cube + [0, 0, 0.08], 1.0, 0.6), (cube, 1.0, 0.6), (cube, 0.0, 0.4)]:
        sim.set_joint_targets(sim.solve_arm(xyz, sim.arm_joints()), gripper)
        sim.step(seconds)
    assert sim.holding_object()
    sim.set_joint_targets(sim.solve_arm(cube + [0, 0, 0.1], sim.arm_joints()), 0.0)
    sim.step(0.6)
    assert sim.object_xyz()[2] > cube[2] + 0.08  # lifted with the gripper
    sim.set_joint_targets(sim.arm_joints(), 1.0)
    sim.step(0.6)
    assert not sim.holding_object()
    assert sim.object_xyz()[2] < cube[2] + 0.01  # dropped back onto the table
    sim.close()


def test_env_follows_the_suite_interface():
    assert suites.get_suite("widowx") is widowx
    assert widowx.DEFAULT_TASK in widowx.TASKS and len(widowx.TASKS) == 7
    env = widowx.make_env("push_block", image_size=64, seed=0)
    assert env.control_rate_hz == 5.0 and env.action_names == actions.ACTION_NAMES
    np.testing.assert_allclose(env.action_space.low, actions.ACTION_LOW)
    np.testing.assert_allclose(env.action_space.high, actions.ACTION_HIGH)
    obs, info = env.reset(seed=3)
    assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8
    assert obs["state"].dtype == np.float32 and obs["state"].shape == (len(widowx.STATE_NAMES),)
    assert info["goal_image"].shape == (64, 64, 3) and info["success"] is False
    np.testing.assert_allclose(obs["state"][:6], env.sim.arm_joints(), atol=1e-6)
    np.testing.assert_allclose(obs["state"][6:9], kin.fk(env.sim.arm_joints())[:3, 3], atol=1e-5)
    obs, reward, terminated, truncated, info = env.step(np.array([0.05, 0, 0, 0, 0, 0, 1], np.float32))
    assert "success" in info and not terminated and not truncated
    assert env.max_episode_steps == 60 and env.render().shape == (128, 128, 3)
    env.close()


def test_env_passes_the_gymnasium_checker():
    import warnings

    from gymnasium.utils.env_checker import check_env

    env = widowx.make_env("close_drawer")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns about the unbounded state space, by design
        check_env(env, skip_render_check=False)
    env.close()


def test_env_moves_the_end_effector_as_the_action_says():
    env = widowx.make_env("reach", seed=0)
    env.reset(seed=0)
    start = env.sim.ee_pose()[:3, 3]
    for _ in range(2):
        env.step(np.array([0.03, -0.02, 0.0, 0, 0, 0, 1], np.float32))
    np.testing.assert_allclose(env.sim.ee_pose()[:3, 3] - start, [0.06, -0.04, 0.0], atol=0.006)
    env.close()


def test_same_seed_same_episode_different_seed_different_goal():
    def rollout(seed):
        env = widowx.make_env("pick_place_table")
        obs, info = env.reset(seed=seed)
        policy = widowx.scripted_policy(env, np.random.default_rng(seed))
        policy.reset()
        images = [obs["image"]]
        for _ in range(8):
            obs, *_ = env.step(policy.act(obs))
            images.append(obs["image"])
        env.close()
        return info["goal_image"], np.stack(images)

    goal_a, images_a = rollout(5)
    goal_b, images_b = rollout(5)
    goal_c, _ = rollout(6)
    np.testing.assert_array_equal(goal_a, goal_b)
    np.testing.assert_array_equal(images_a, images_b)
    assert not np.array_equal(goal_a, goal_c)


@pytest.mark.parametrize("task", widowx.TASKS)
def test_scripted_expert_solves_the_task(task):
    env = widowx.make_env(task)
    successes = 0
    for episode in range(3):
        obs, info = env.reset(seed=100 + episode)
        policy = widowx.scripted_policy(env, np.random.default_rng(episode))
        policy.reset()
        for _ in range(env.max_episode_steps):
            obs, _, terminated, truncated, info = env.step(policy.act(obs))
            if terminated or truncated:
                break
        successes += int(info["success"])
    env.close()
    assert successes >= 2, f"scripted expert solved {task} in {successes}/3 episodes"


def test_play_policy_strings_skills_together():
    assert widowx.play_tasks == ["play"]
    env = widowx.make_env("play", seed=1)
    obs, info = env.reset(seed=1)
    policy = widowx.scripted_policy(env, np.random.default_rng(1))
    policy.reset()
    start_block, start_object, start_drawer = env.sim.block_xy(), env.sim.object_xyz(), env.sim.drawer_opening()
    for _ in range(env.max_episode_steps):
        obs, _, terminated, truncated, info = env.step(policy.act(obs))
        assert not terminated and not info["success"]
    moved = [np.linalg.norm(env.sim.block_xy() - start_block) > 0.03,
             np.linalg.norm(env.sim.object_xyz() - start_object) > 0.03,
             abs(env.sim.drawer_opening() - start_drawer) > 0.05]
    assert sum(moved) >= 1, "a play episode changed nothing in the scene"
    assert truncated
    env.close()


def test_importing_the_sim_package_does_not_import_mujoco():
    code = "import sys, crl_ros.sim, crl_ros.sim.suites; assert 'mujoco' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_task_names_are_the_suites_own_and_load_no_simulator():
    code = ("import sys; from crl_ros.sim.suites import task_names; "
            "print(task_names('widowx'), task_names('widowx', play=True)); assert 'mujoco' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == f"{widowx.TASKS} {widowx.TASKS + widowx.play_tasks}"
