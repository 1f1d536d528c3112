"""`crl demos --bag` writes sim demonstrations as rosbags; `crl convert` turns them back into
exactly the dataset `crl demos` writes directly."""
import numpy as np

from crl_ros.cli import main
from crl_ros.learning.dataset import load


def test_sim_demo_bags_convert_with_default_options_to_the_direct_dataset(tmp_path, capsys):
    common = ["--env", "widowx", "--task", "push_block", "--episodes", "2", "--seed", "3"]
    assert main(["demos", *common, "--bag", "--out", str(tmp_path / "bags")]) == 0
    assert main(["demos", *common, "--out", str(tmp_path / "direct.h5")]) == 0
    bags = sorted(str(p) for p in (tmp_path / "bags").glob("episode_*"))
    assert len(bags) == 2
    capsys.readouterr()
    # camera_node's default crop is for 640x480 camera frames; these 48x48 observations are
    # already at the dataset size, so the converter skips it and says so
    assert main(["convert", *bags, "--out", str(tmp_path / "converted.h5"), "--quiet"]) == 0
    out = capsys.readouterr()
    assert "2 of 2 bag(s) hold 48x48 frames" in out.err and "was not applied" in out.err
    assert "crop None" in out.out
    direct, converted = load(tmp_path / "direct.h5"), load(tmp_path / "converted.h5")
    assert converted.metadata.provenance["crop"] is None
    np.testing.assert_array_equal(converted.episode_ends, direct.episode_ends)
    np.testing.assert_array_equal(converted.images, direct.images)
    np.testing.assert_allclose(converted.actions, direct.actions, atol=1e-6)
    # a crop asked for is applied, and one that does not fit is an error naming it
    assert main(["convert", *bags, "--out", str(tmp_path / "forced.h5"), "--crop", "80", "0", "560", "480",
                 "--quiet"]) == 1
    assert "does not fit in a 48x48 image" in capsys.readouterr().err
    assert not (tmp_path / "forced.h5").exists()
    # recordings are never overwritten
    assert main(["demos", *common, "--bag", "--out", str(tmp_path / "bags")]) == 1


def test_bags_need_the_widowx_action_layout(tmp_path):
    assert main(["demos", "--env", "pointmass", "--episodes", "1", "--bag", "--out", str(tmp_path / "b")]) == 2
