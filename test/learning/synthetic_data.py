"""A tiny in-memory dataset for the learning tests."""
import numpy as np

from crl_ros.learning.dataset import Dataset, DatasetMetadata


def synthetic_dataset(episode_lengths=(20, 35, 2, 43), image_size=32, channels=3, action_dim=7, seed=0):
    rng = np.random.default_rng(seed)
    ends = np.cumsum(episode_lengths).astype(np.int64)
    n = int(ends[-1])
    images = rng.integers(0, 256, (n, image_size, image_size, channels), dtype=np.uint8)
    actions = rng.normal(size=(n, action_dim)).astype(np.float32) * np.arange(1, action_dim + 1) + 3.0
    return Dataset(images=images, actions=actions, episode_ends=ends,
                   metadata=DatasetMetadata((image_size, image_size, channels), action_dim))


def write_tiny_dataset(path):
    """A small dataset file (4 episodes of 32x32 images, 2-D actions), written with the public writer."""
    from crl_ros.learning.dataset import DatasetWriter

    data = synthetic_dataset(episode_lengths=(12, 20, 9, 15), image_size=32, action_dim=2, seed=3)
    meta = DatasetMetadata((32, 32, 3), 2, ["vx", "vy"], action_low=[-4.0, -4.0], action_high=[8.0, 8.0],
                           provenance={"source": "test"})
    with DatasetWriter(path, meta) as writer:
        for i in range(data.num_episodes):
            writer.add_episode(*data.episode(i))
    return path
