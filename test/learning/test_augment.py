import pytest
import torch
from synthetic_data import synthetic_dataset

from crl_ros.learning.agents import default_config, make_agent
from crl_ros.learning.augment import batch_coin, color_jitter, random_resized_crop, random_shift, shift_images
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


def test_real_image_augmentations_by_config():
    sampler = Sampler(synthetic_dataset(), "cpu", seed=0)
    cfg = apply_overrides(default_config("gcbc"), ["augment_prob=1", "augment_shift=false", "augment_resized_crop=true",
                                                   "augment_color_jitter=true", "hidden_width=8", "hidden_depth=1",
                                                   "encoder_channels=[4, 4, 4]"])
    agent = make_agent("gcbc", cfg, (32, 32, 3), 7, "cpu")
    batch = agent.make_batch(sampler, 16)
    assert batch["observations"].dtype == torch.uint8 and batch["observations"].shape == (16, 32, 32, 3)
    assert torch.isfinite(agent.update(batch, 0)["actor_loss"])


def test_resized_crop_full_box_is_identity_and_shared():
    g = torch.Generator().manual_seed(3)
    obs = torch.randint(0, 256, (4, 16, 16, 6), dtype=torch.uint8, generator=g)
    (same,) = random_resized_crop([obs], g, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.equal(same, obs)
    cropped_obs, cropped_copy = random_resized_crop([obs, obs.clone()], g)
    assert cropped_obs.shape == obs.shape and cropped_obs.dtype == torch.uint8
    assert torch.equal(cropped_obs, cropped_copy)
    assert not torch.equal(cropped_obs, obs)


def test_color_jitter_neutral_ranges_are_identity_and_parameters_shared():
    g = torch.Generator().manual_seed(4)
    obs = torch.rand(4, 8, 8, 3, generator=g)
    (same,) = color_jitter([obs], g, brightness=0.0, contrast=(1, 1), saturation=(1, 1), hue=0.0)
    torch.testing.assert_close(same, obs, atol=1e-5, rtol=0)
    gray = obs.mean(-1, keepdim=True).expand(-1, -1, -1, 3).contiguous()
    (gray_out,) = color_jitter([gray], g, brightness=0.0, contrast=(1, 1), saturation=(0.5, 2.0), hue=0.5)
    torch.testing.assert_close(gray_out, gray, atol=1e-5, rtol=0)  # grey has no saturation or hue
    jittered, jittered_copy = color_jitter([obs, obs.clone()], g)
    assert torch.equal(jittered, jittered_copy) and not torch.allclose(jittered, obs)
    dim = obs * 0.5 + 0.1  # no clipping at factors up to 1.5
    (brighter,) = color_jitter([dim], g, brightness=0.5, contrast=(1, 1), saturation=(1, 1), hue=0.0)
    factor = brighter / dim
    assert torch.allclose(factor, factor[:, :1, :1, :1], atol=1e-5)  # one factor per sample
    assert ((factor >= 0.5) & (factor <= 1.5)).all() and factor[:, 0, 0, 0].std() > 0.01
