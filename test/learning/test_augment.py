import torch

from crl_ros.learning.augment import random_shift, shift_images


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
    shifted_obs, shifted_goal = random_shift([obs, goal], pad=4, prob=1.0, generator=g)
    # The centre pixel's source coordinates give the shift (no clamping at the centre).
    shifts = (shifted_obs[:, 8, 8, :2] - 8).long()
    assert torch.equal(shifts, (shifted_goal[:, 8, 8, :2] - 8).long())
    assert shifts.abs().max() <= 4 and len({tuple(s) for s in shifts.tolist()}) > 10
    for b, (dy, dx) in enumerate(shifts.tolist()):
        assert torch.equal(shifted_obs[b], _replicate_pad_crop(obs[b], dy, dx, 4))
        assert torch.equal(shifted_goal[b], _replicate_pad_crop(goal[b], dy, dx, 4))


def test_probability_applies_to_whole_batch():
    g = torch.Generator().manual_seed(2)
    images = torch.rand(32, 12, 12, 3, generator=g)
    assert torch.equal(random_shift([images], 4, 0.0, g)[0], images)
    shifted_batches = 0
    for _ in range(200):
        out = random_shift([images], 4, 0.5, g)[0]
        changed = (out != images).flatten(1).any(1)
        assert changed.all() or not changed.any() or changed.float().mean() > 0.5
        shifted_batches += int(changed.any())
    assert 70 < shifted_batches < 130
