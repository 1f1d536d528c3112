"""Sim recordings store the camera as JPEG (sim_node's image_raw/compressed): the same
simulated episode written once as rgb8 image_raw and once as JPEG image_raw/compressed
converts to the same actions and to images within JPEG error, from a bag ~10x+ smaller."""
import numpy as np
import pytest

from crl_ros.bags.convert import ConvertOptions, convert_bags
from crl_ros.bags.writer import BagWriter, make_action, make_image, make_jpeg_image, make_joint_state
from crl_ros.learning.dataset import load
from crl_ros.robot import actions
from crl_ros.sim import scripted
from crl_ros.sim.widowx_sim import WidowXSim

CAMERA_HZ = 30
STEPS = 12


def _record_episode(raw_bag, jpeg_bag, width=640, height=480, seed=1):
    """One scripted reach episode, written like recorder_node records `crl record --sim`: a
    camera frame every 1/30 s (raw to one bag, JPEG q90 to the other, the same pixels and
    receive times), joint_states with each frame, an action at the control rate."""
    sim = WidowXSim("reach", max_render_size=max(width, height))
    try:
        sim.reset(seed=seed)
        expert = scripted.make_policy(sim, np.random.default_rng(seed), 0.1)
        period_ns = int(1e9 / actions.CONTROL_RATE_HZ)
        frames_per_step = CAMERA_HZ // int(actions.CONTROL_RATE_HZ)
        t = 1_700_000_000 * 10**9

        def frame(stamp):
            image = sim.render(width, height, "overhead")
            names, positions = sim.joint_state()
            for bag, msg, topic in ((raw_bag, make_image(image, stamp), "image_raw"),
                                    (jpeg_bag, make_jpeg_image(image, stamp), "image_raw/compressed")):
                bag.write(topic, stamp, msg)
                bag.write("joint_states", stamp + 1, make_joint_state(names, positions, stamp))

        frame(t - period_ns // frames_per_step)
        for _ in range(STEPS):
            action = np.asarray(expert.act(), np.float32)
            for bag in (raw_bag, jpeg_bag):
                bag.write("action", t, make_action(action, actions.ACTION_NAMES))
            q, gripper, _ = actions.apply_ee_delta(sim.arm_joints(), action.astype(np.float64))
            sim.set_joint_targets(q, gripper)
            for j in range(frames_per_step):
                sim.step(1.0 / CAMERA_HZ)
                frame(t + (j + 1) * period_ns // frames_per_step - 1000)
            t += period_ns
        # the arm holds after the last action (one more period recorded, as `crl record` does)
        for bag in (raw_bag, jpeg_bag):
            bag.write("action", t, make_action(np.r_[np.zeros(6), action[6:]], actions.ACTION_NAMES))
    finally:
        sim.close()


def _bag_bytes(path):
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@pytest.mark.parametrize("fast_jpeg", [True, False], ids=["dct-scaled-decode", "full-decode"])
def test_jpeg_and_raw_recordings_of_one_episode_convert_alike(tmp_path, fast_jpeg):
    raw_path, jpeg_path = tmp_path / "raw", tmp_path / "jpeg"
    with BagWriter(raw_path) as raw_bag, BagWriter(jpeg_path) as jpeg_bag:
        _record_episode(raw_bag, jpeg_bag)
    assert _bag_bytes(jpeg_path) * 10 < _bag_bytes(raw_path)

    crop, size = (80, 0, 560, 480), (48, 48)  # camera_node.yaml's crop and size
    raw = load(convert_bags([raw_path], tmp_path / "raw.h5", ConvertOptions(crop=crop, size=size, progress=False),
                            log=lambda _: None))
    jpeg = load(convert_bags([jpeg_path], tmp_path / "jpeg.h5",
                             ConvertOptions(crop=crop, size=size, fast_jpeg=fast_jpeg, progress=False),
                             log=lambda _: None))
    assert raw.num_frames == jpeg.num_frames == STEPS + 1
    np.testing.assert_array_equal(jpeg.actions, raw.actions)
    np.testing.assert_array_equal(jpeg.episode_ends, raw.episode_ends)
    np.testing.assert_array_equal(jpeg.proprio, raw.proprio)
    error = np.abs(jpeg.images.astype(int) - raw.images.astype(int))
    assert error.mean() < 2.0, error.mean()        # JPEG q90 (+ DCT-scaled decode): ~0.5-1 level
    assert np.percentile(error, 99) <= 12, np.percentile(error, 99)
    # the frames are the same ones: every dataset image is nearest its own raw twin
    moving = np.abs(np.diff(raw.images.astype(int), axis=0)).mean()
    assert moving > error.mean(), (moving, error.mean())
