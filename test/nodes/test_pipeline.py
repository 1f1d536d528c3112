"""record (sim through the ROS graph) -> convert -> train -> policy_node loads the result."""
import numpy as np

from crl_ros.bags.reader import BagReader
from crl_ros.learning import dataset as ds


def test_record_writes_one_complete_bag_per_episode(pipeline):
    assert pipeline["record"].returncode == 0, pipeline["record"].stderr[-3000:]
    bags = sorted(pipeline["bags"].glob("episode_*"))
    assert len(bags) == 2
    for bag in bags:
        with BagReader(bag) as reader:
            topics = reader.topics()
            assert topics["/action"].count == 8
            assert topics["/image_raw"].count >= 20          # ~30 Hz over ~2.2 s
            assert topics["/joint_states"].count >= 100      # ~100 Hz
            first = next(m for _, _, m in reader.messages(["/image_raw"]))
            assert (first.width, first.height, first.encoding) == (160, 120, "rgb8")


def test_convert_makes_a_dataset_whose_arm_moves(pipeline):
    assert pipeline["convert"].returncode == 0, pipeline["convert"].stderr[-3000:]
    data = ds.load(pipeline["dataset"])
    assert data.num_episodes == 2 and data.num_frames == 16
    assert data.metadata.image_shape == (48, 48, 3)
    # the arm moved under the recorded actions: consecutive frames differ
    diffs = [np.abs(data.images[i + 1].astype(int) - data.images[i]).mean() for i in range(7)]
    assert max(diffs) > 1.0
    # and the joints (proprio) changed
    assert np.abs(data.proprio[7, :6] - data.proprio[0, :6]).max() > 0.01


def test_train_produces_a_loadable_policy(pipeline):
    assert pipeline["train"].returncode == 0, pipeline["train"].stderr[-3000:]
    from crl_ros.learning.policy import Policy
    policy = Policy.load(pipeline["model"], device="cpu")
    assert policy.image_shape == (48, 48, 3) and policy.action_dim == 7
