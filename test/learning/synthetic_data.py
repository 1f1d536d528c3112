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
