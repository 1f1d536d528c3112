"""Distribution shifts (crl_ros.sim.shifts): the parser, seeded draws, the image functions, and
what each shift does to the simulated camera's pixels; no shift keeps today's pixels exactly."""
import numpy as np
import pytest

from crl_ros.robot import camera
from crl_ros.sim.rollout import EVAL_SEEDS, wilson_interval
from crl_ros.sim.shifts import PRESETS, SHIFTS, ShiftSpec, ShiftValue, parse_shift


# -- the held-out protocol's statistics ---------------------------------------------------------
def test_wilson_interval_against_known_values():
    z2 = 1.96 ** 2
    # closed forms at the edges: 0 of n -> [0, z^2/(n+z^2)], n of n -> [n/(n+z^2), 1]
    assert wilson_interval(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))
    assert wilson_interval(20, 20) == pytest.approx((20 / (20 + z2), 1.0))
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    # scipy.stats.binomtest(k, n).proportion_ci(method="wilson") gives these (its z = 1.95996)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson_interval(45, 50) == pytest.approx((0.7864, 0.9565), abs=1e-4)
    # the bounds are where the score test is exactly at z: |s/n - p| = z sqrt(p(1-p)/n)
    low, high = wilson_interval(13, 40)
    for p in (low, high):
        assert abs(13 / 40 - p) == pytest.approx(1.96 * np.sqrt(p * (1 - p) / 40))
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(13, 40, z=2.58)[0] < low  # 99% is wider
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_selection_and_test_seeds_differ_from_every_seed_used_so_far():
    assert EVAL_SEEDS["selection"] == 100  # every choice before the held-out protocol was made on it
    # the data seeds (0-4), the demo's sim seeds (100-104), the point-mass demo (123)
    assert EVAL_SEEDS["test"] not in {0, 1, 2, 3, 4, 100, 101, 102, 103, 104, 123}


# -- the parser ---------------------------------------------------------------------------------
def test_parse_values_ranges_signs_and_presets():
    assert parse_shift("camera_yaw=3") == ("camera_yaw", ShiftValue(3.0, 3.0))
    assert parse_shift("camera_z=-0.02") == ("camera_z", ShiftValue(-0.02, -0.02))
    assert parse_shift("light=+-0.3") == ("light", ShiftValue(0.3, 0.3, random_sign=True))
    assert parse_shift("camera_pos=0.01:0.03") == ("camera_pos", ShiftValue(0.01, 0.03))
    assert parse_shift("distractors=0:2") == ("distractors", ShiftValue(0, 2, integer=True))
    # moderate = camera +-2 cm and +-3 deg, light +-30%, one distractor (the severity)
    assert parse_shift("camera_pos=moderate")[1] == ShiftValue(0.02, 0.02)
    assert parse_shift("camera_rot=moderate")[1] == ShiftValue(3.0, 3.0)
    assert parse_shift("light=moderate")[1] == ShiftValue(0.3, 0.3, random_sign=True)
    assert parse_shift("distractors=moderate")[1] == ShiftValue(1, 1, integer=True)
    for name in SHIFTS:  # every preset of every shift parses, and mild <= moderate < strong in size
        sizes = [abs(parse_shift(f"{name}={level}")[1].low - SHIFTS[name].nominal) for level in PRESETS]
        assert 0 < sizes[0] <= sizes[1] < sizes[2], name
        assert sizes[0] < sizes[1] or name == "distractors", name
    # --randomize: V is the range from the nominal world to V; no value means moderate
    assert parse_shift("light=0.3", randomize=True)[1] == ShiftValue(-0.3, 0.3)
    assert parse_shift("camera_pos", randomize=True)[1] == ShiftValue(0.0, 0.02)
    assert parse_shift("light", randomize=True)[1] == ShiftValue(-0.3, 0.3)
    assert parse_shift("camera_yaw=strong", randomize=True)[1] == ShiftValue(-6.0, 6.0)
    assert parse_shift("jpeg=40", randomize=True)[1] == ShiftValue(40, 95, integer=True)


@pytest.mark.parametrize("text, problem", [
    ("cam_yaw=3", "unknown shift 'cam_yaw'; choose from camera_pos"),
    ("camera_yaw", "needs a value"),
    ("camera_yaw=", "needs a value"),
    ("camera_yaw=left", "not a number, LO:HI, +-V"),
    ("camera_yaw=1:2:3", "one number V, +-V or a range"),
    ("camera_yaw=nan", "one number V"),
    ("camera_pos=+-0.02", "+-V only for a single value of a signed shift"),
    ("camera_yaw=45", "45 deg is outside [-30, 30]"),
    ("noise=-1", "outside [0, 100]"),
    ("jpeg=200", "outside [1, 95]"),
    ("distractors=1.5", "whole numbers"),
    ("distractors=4", "outside [0, 3]"),
    ("camera_yaw=3:1", "LO <= HI"),
])
def test_parse_errors_name_the_problem(text, problem):
    with pytest.raises(ValueError) as info:
        parse_shift(text)
    assert problem in str(info.value)


def test_spec_refuses_a_name_twice_and_an_unknown_goal_case():
    with pytest.raises(ValueError, match="given twice"):
        ShiftSpec.parse(["light=0.1"], ["light"])
    with pytest.raises(ValueError, match="same or nominal"):
        ShiftSpec.parse(["light=0.1"], goal="before")
    assert not ShiftSpec() and ShiftSpec().describe() == "none"
    assert ShiftSpec.parse(["camera_yaw=3", "light=moderate"], goal="nominal").describe() == \
        "camera_yaw=3 light=+-0.3, goal nominal"


# -- seeded draws -------------------------------------------------------------------------------
def test_draws_are_seeded_per_episode_and_independent_per_shift():
    spec = ShiftSpec.parse(["camera_pos=0.02", "light=+-0.3", "distractors=1:3", "noise=2:5"])
    a, b, c = spec.draw(7), spec.draw(7), spec.draw(8)
    assert np.array_equal(a.camera_offset, b.camera_offset) and a.distractors == b.distractors
    assert a.light_scale == b.light_scale and a.noise == b.noise
    assert not np.allclose(a.camera_offset, c.camera_offset)
    assert np.linalg.norm(a.camera_offset) == pytest.approx(0.02)  # a size, a random direction
    assert a.light_scale in (pytest.approx(1.3), pytest.approx(0.7))
    assert 1 <= len(a.distractors) <= 3 and 2 <= a.noise <= 5
    # adding a shift never changes another's draw
    alone = ShiftSpec.parse(["camera_pos=0.02"]).draw(7)
    assert np.array_equal(alone.camera_offset, a.camera_offset)
    # over many episodes the random sign and the random direction both vary
    draws = [spec.draw(s) for s in range(40)]
    assert {round(d.light_scale, 6) for d in draws} == {1.3, 0.7}
    assert len({len(d.distractors) for d in draws}) == 3
    # distractors stand in distinct zones
    for d in draws:
        xy = np.array([cup[:2] for cup in d.distractors])
        gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1)[np.triu_indices(len(xy), 1)]
        assert np.all(gaps > 0.06)


# -- the image functions (crl_ros.robot.camera) -------------------------------------------------
@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(40, 210, (12, 12, 3)), np.ones((8, 8, 1)))
    return smooth.astype(np.uint8)


def test_exposure_functions_change_pixels_as_stated(frame):
    f = frame.astype(float)
    brighter = camera.adjust_exposure(frame, brightness=0.1).astype(float)
    assert brighter.mean() - f.mean() == pytest.approx(25.5, abs=0.6)
    assert camera.adjust_exposure(frame, contrast=0.3).astype(float).std() == pytest.approx(1.3 * f.std(), rel=0.02)
    warmer = camera.adjust_exposure(frame, colour=0.1).astype(float)
    assert warmer[..., 0].mean() > f[..., 0].mean() + 5 and warmer[..., 2].mean() < f[..., 2].mean() - 5
    assert np.array_equal(warmer[..., 1], frame[..., 1])
    assert np.array_equal(camera.adjust_exposure(frame), frame)


def test_noise_and_blur(frame):
    noisy = camera.add_noise(frame, 4.0, np.random.default_rng(1)).astype(float)
    assert (noisy - frame).std() == pytest.approx(4.0, rel=0.1)
    assert np.array_equal(camera.add_noise(frame, 4.0, np.random.default_rng(1)), noisy)
    blurred = camera.gaussian_blur(frame, 2.0).astype(float)
    edges = lambda im: (np.diff(im, axis=1) ** 2).mean()  # noqa: E731  (blur spreads steps: less energy)
    assert edges(blurred) < 0.5 * edges(frame.astype(float))
    assert blurred.mean() == pytest.approx(frame.mean(), abs=1.0) and blurred.shape == frame.shape
    assert np.array_equal(camera.gaussian_blur(frame, 0.0), frame)


def test_jpeg_quality_changes_the_bytes(frame):
    best, worst = camera.encode_compressed(frame, "jpeg", 95), camera.encode_compressed(frame, "jpeg", 10)
    assert best != worst and len(worst) < len(best)


# -- the simulator under shifts -------------------------------------------------------------------
pytest.importorskip("mujoco")


def _env(shift=None, goal="same", size=48):
    from crl_ros.sim.widowx import make_env
    return make_env("push_block", image_size=size, shift=ShiftSpec.parse(shift or [], goal=goal) if shift else None)


@pytest.fixture(scope="module")
def nominal():
    env = _env()
    obs, info = env.reset(seed=5)
    yield env, obs["image"], info["goal_image"]
    env.close()


def test_no_shift_images_are_todays_bit_for_bit(nominal):
    from crl_ros.sim import widowx_model
    from crl_ros.sim.widowx_sim import SUPERSAMPLE

    env, image, goal = nominal
    sim = env.unwrapped.sim
    # today's pipeline: the render at 4x through camera_node's preprocessing
    assert np.array_equal(image, camera.preprocess_image(sim.render(48 * SUPERSAMPLE, 48 * SUPERSAMPLE), size=(48, 48)))
    assert widowx_model.build_mjcf(640) == widowx_model.build_mjcf(640, distractors=0)
    assert sim.shift is None and "distractor" not in widowx_model.build_mjcf(640)
    # an empty spec is the nominal world too
    obs, info = _env(shift=[]).reset(seed=5)
    assert np.array_equal(obs["image"], image) and np.array_equal(info["goal_image"], goal)
    # a shift applied and cleared leaves the world exactly as built
    sim.set_shift(ShiftSpec.parse(["camera_rot=6", "fov=5", "light=0.5", "light_dir=30", "table_colour=0.3",
                                   "brightness=0.2"]).draw(3))
    assert not np.array_equal(sim.camera_image(48), image)
    sim.set_shift(None)
    assert np.array_equal(sim.camera_image(48), image)


def _red_block(image):
    mask = (image[..., 0] > 150) & (image[..., 1] < 90) & (image[..., 2] < 90)
    ys, xs = np.nonzero(mask)
    return mask.sum(), xs.mean(), ys.mean()


def test_camera_shifts_move_the_image_as_stated(nominal):
    _, image, _ = nominal
    count, x, y = _red_block(image)
    moved = {s: _red_block(_env([s]).reset(seed=5)[0]["image"]) for s in
             ("camera_x=0.04", "camera_z=0.04", "camera_yaw=5", "camera_pitch=5", "fov=8", "fov=-8")}
    assert moved["camera_x=0.04"][1] < x - 2        # camera forward (+x, right in the image): the block goes left
    assert moved["camera_z=0.04"][2] > y + 1        # camera raised: the block lower in the image
    assert moved["camera_yaw=5"][1] > x + 2         # camera turned left: the scene goes right
    assert moved["camera_pitch=5"][2] > y + 3       # view tilted up: the scene goes down
    assert moved["fov=8"][0] < 0.8 * count < moved["fov=-8"][0] * 0.8  # wider lens, smaller block


@pytest.mark.parametrize("shift, check", [
    ("light=0.3", lambda new, old: new.mean() > old.mean() + 10),
    ("light=-0.3", lambda new, old: new.mean() < old.mean() - 10),
    ("light_dir=45", lambda new, old: np.abs(new - old).mean() > 3),
    ("brightness=0.1", lambda new, old: new.mean() - old.mean() > 15),
    ("contrast=0.3", lambda new, old: new.std() > 1.15 * old.std()),
    ("colour=0.1", lambda new, old: new[..., 0].mean() > old[..., 0].mean() + 3 and
     new[..., 2].mean() < old[..., 2].mean() - 3),
    ("noise=5", lambda new, old: 3 < np.abs(new - old).mean() < 6),
    ("jpeg=10", lambda new, old: 1 < np.abs(new - old).mean() < 10),
    ("blur=1.5", lambda new, old: (np.diff(new, axis=1) ** 2).mean() < 0.7 * (np.diff(old, axis=1) ** 2).mean()),
    ("table_colour=0.3", lambda new, old: np.abs(new - old).mean() > 10),
    ("camera_rot=3", lambda new, old: np.abs(new - old).mean() > 5),
    ("camera_pos=0.02", lambda new, old: np.abs(new - old).mean() > 5),
])
def test_each_shift_changes_the_pixels_as_stated(nominal, shift, check):
    _, image, _ = nominal
    obs, info = _env([shift]).reset(seed=5)
    assert check(obs["image"].astype(float), image.astype(float)), shift
    assert "shift" in info


def test_distractors_add_cups_to_the_table_and_leave_the_task_alone(nominal):
    env0, image, _ = nominal
    env = _env(["distractors=3"])
    obs, info = env.reset(seed=5)
    sim = env.unwrapped.sim
    changed = np.any(obs["image"] != image, axis=-1)
    assert 0.01 < changed.mean() < 0.25  # three small objects: a local change, not a new picture
    for x, y, radius, half_height, *_ in info["shift"].distractors:
        assert half_height > 0 and radius >= 0.02
    # they collide with nothing: the same actions give the same states as without them
    for e in (env0, env):
        e.reset(seed=5)
    for _ in range(5):
        action = np.array([0.02, 0.01, -0.02, 0, 0, 0, 1.0], np.float32)
        a, b = env0.step(action)[0]["state"], env.step(action)[0]["state"]
        assert np.array_equal(a, b)
    assert sim.model.nbody == env0.unwrapped.sim.model.nbody + 3
    env.close()


def test_same_seed_same_images_and_other_seed_other_draw():
    spec = ["camera_pos=0.02", "light=+-0.3", "noise=3", "distractors=1"]
    env_a, env_b = _env(spec), _env(spec)
    a_obs, a_info = env_a.reset(seed=11)
    b_obs, b_info = env_b.reset(seed=11)
    assert np.array_equal(a_obs["image"], b_obs["image"]) and np.array_equal(a_info["goal_image"], b_info["goal_image"])
    action = np.array([0.01, 0, 0, 0, 0, 0, 1.0], np.float32)
    a_next, b_next = env_a.step(action)[0]["image"], env_b.step(action)[0]["image"]
    assert np.array_equal(a_next, b_next)
    c_obs, c_info = env_a.reset(seed=12)
    assert not np.allclose(c_info["shift"].camera_offset, a_info["shift"].camera_offset)
    # the start and goal are the nominal evaluation's: the state does not depend on the shift
    assert np.array_equal(_env().reset(seed=11)[0]["state"], a_obs["state"])
    env_a.close()
    env_b.close()


def test_goal_cases(nominal):
    _, image, goal = nominal
    same_obs, same_info = _env(["camera_yaw=3"], goal="same").reset(seed=5)
    late_obs, late_info = _env(["camera_yaw=3"], goal="nominal").reset(seed=5)
    # the observations are shifted in both cases
    assert np.array_equal(same_obs["image"], late_obs["image"]) and not np.array_equal(late_obs["image"], image)
    # the goal: under the shift (camera moved before it was captured) or nominal (moved after)
    assert not np.array_equal(same_info["goal_image"], goal)
    assert np.array_equal(late_info["goal_image"], goal)
