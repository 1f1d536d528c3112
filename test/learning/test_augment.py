import pytest
import torch
from synthetic_data import synthetic_dataset

from crl_ros.learning.agents import default_config, make_agent
from crl_ros.learning.augment import batch_coin, random_shift, shift_images
from crl_ros.learning.config import apply_overrides
from crl_ros.learning.sampler import Sampler


def _replicate_pad_crop(image, dy, dx, pad):
    """Reference: the DrQ definition on one [H, W, C] image."""
    chw = image.permute(2, 0, 1)[None].float()
    padded = torch.nn.functional.pad(chw, (pad, pad, pad, pad), mode="replicate")[0]
    h, w = image.shape[:2]
    return padded[:, pad + dy:pad + dy + h, pad + dx:pad + dx + w].permute(1, 2, 0).to(image.dtype)


def test_shift_equals_replicate_pad_and_crop():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 12, 10, 3), dtype=torch.uint8, generator=g)
    shifts = torch.tensor([[0, 0], [4, -4], [-4, 4], [1, 3], [-2, 0], [4, 4]])
    out = shift_images(images, shifts)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    for b, (dy, dx) in enumerate(shifts.tolist()):
        assert torch.equal(out[b], _replicate_pad_crop(images[b], dy, dx, 4))


def _coordinate_images(batch, height, width, generator):
    """Float images whose channels 0/1 hold each pixel's row/column, channel 2 noise."""
    rows = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
    cols = torch.arange(width, dtype=torch.float32)[None, :].expand(height, width)
    noise = torch.rand(batch, height, width, generator=generator)
    return torch.stack([rows.expand(batch, -1, -1), cols.expand(batch, -1, -1), noise], -1)


def test_same_shift_for_observation_and_goal_within_pad():
    g = torch.Generator().manual_seed(1)
    obs, goal = _coordinate_images(64, 16, 16, g), _coordinate_images(64, 16, 16, g)
    shifted_obs, shifted_goal = random_shift([obs, goal], pad=4, generator=g)
    # The centre pixel's source coordinates give the shift (no clamping at the centre).
    shifts = (shifted_obs[:, 8, 8, :2] - 8).long()
    assert torch.equal(shifts, (shifted_goal[:, 8, 8, :2] - 8).long())
    assert shifts.abs().max() <= 4 and len({tuple(s) for s in shifts.tolist()}) > 10
    for b, (dy, dx) in enumerate(shifts.tolist()):
        assert torch.equal(shifted_obs[b], _replicate_pad_crop(obs[b], dy, dx, 4))
        assert torch.equal(shifted_goal[b], _replicate_pad_crop(goal[b], dy, dx, 4))


def test_coin_decides_for_whole_batches():
    g = torch.Generator().manual_seed(2)
    assert not any(batch_coin(0.0, g) for _ in range(100))
    assert all(batch_coin(1.0, g) for _ in range(100))
    assert 150 < sum(batch_coin(0.5, g) for _ in range(400)) < 250


@pytest.mark.parametrize("prob, expect_augmented", [(0.0, False), (1.0, True)])
def test_agent_batches_follow_augment_prob(prob, expect_augmented):
    sampler = Sampler(synthetic_dataset(), "cpu", seed=0)
    cfg = apply_overrides(default_config("stable_crl"), [f"augment_prob={prob}", "hidden_width=8",
                                                         "hidden_depth=1", "encoder_channels=[4, 4, 4]"])
    agent = make_agent("stable_crl", cfg, (32, 32, 3), 7, "cpu")
    batch = agent.make_batch(sampler, 64)
    assert ("augmented_observations" in batch) == expect_augmented
    assert ("augmented_goals" in batch) == expect_augmented
    assert "augmented_next_observations" not in batch  # only the BC term is augmented by default
