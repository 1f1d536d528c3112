"""`crl demos --bag` writes sim demonstrations as rosbags; `crl convert` turns them back into
exactly the dataset `crl demos` writes directly."""
import numpy as np

from crl_ros.cli import main
from crl_ros.learning.dataset import load


def test_sim_demo_bags_convert_to_the_direct_dataset(tmp_path):
    common = ["--env", "widowx", "--task", "push_block", "--episodes", "2", "--seed", "3"]
    assert main(["demos", *common, "--bag", "--out", str(tmp_path / "bags")]) == 0
    assert main(["demos", *common, "--out", str(tmp_path / "direct.h5")]) == 0
    bags = sorted(str(p) for p in (tmp_path / "bags").glob("episode_*"))
    assert len(bags) == 2
    assert main(["convert", *bags, "--out", str(tmp_path / "converted.h5"), "--crop", "0", "0", "0", "0",
                 "--quiet"]) == 0
    direct, converted = load(tmp_path / "direct.h5"), load(tmp_path / "converted.h5")
    np.testing.assert_array_equal(converted.episode_ends, direct.episode_ends)
    np.testing.assert_array_equal(converted.images, direct.images)
    np.testing.assert_allclose(converted.actions, direct.actions, atol=1e-6)
    # recordings are never overwritten
    assert main(["demos", *common, "--bag", "--out", str(tmp_path / "bags")]) == 1


def test_bags_need_the_widowx_action_layout(tmp_path):
    assert main(["demos", "--env", "pointmass", "--episodes", "1", "--bag", "--out", str(tmp_path / "b")]) == 2
