from pathlib import Path

import pytest
import torch
from synthetic_data import synthetic_dataset, write_tiny_dataset

from crl_ros.learning.agents import config_from_checkpoint, default_config, make_agent
from crl_ros.learning.agents.common import AUGMENTATIONS, augment_overrides
from crl_ros.learning.augment import (batch_coin, color_jitter, gaussian_blur, gaussian_noise, random_resized_crop,
                                      random_rotate, random_shift, shift_images)
from crl_ros.learning.checkpoint import load_checkpoint
from crl_ros.learning.config import apply_overrides
from crl_ros.learning.profiles import PROFILES
from crl_ros.learning.sampler import Sampler

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
TINY = ["hidden_width=8", "hidden_depth=1", "encoder_channels=[4, 4, 4]"]


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


# -- the augmentations beyond the paper's shift ---------------------------------------------

#: op name -> a call with ranges wide enough that every sample changes
OPS = {
    "crop": lambda x, g: random_resized_crop(x, g, scale=(0.6, 0.8)),
    "rotate": lambda x, g: random_rotate(x, g, degrees=10.0),
    "color_jitter": lambda x, g: color_jitter(x, g),
    "blur": lambda x, g: gaussian_blur(x, g, sigma=(0.8, 1.5)),
    "noise": lambda x, g: gaussian_noise(x, g, std=10.0),
    "shift": lambda x, g: random_shift(x, 4, g),
}


def _smooth_images(batch, size, device, seed=0):
    """Float RGB images in [0.1, 0.9] with structure at every scale (a noisy gradient)."""
    g = torch.Generator(device).manual_seed(seed)
    ramp = torch.linspace(0.1, 0.9, size, device=device)
    base = (ramp[:, None, None] * 0.5 + ramp[None, :, None] * 0.5).expand(size, size, 3)
    noise = 0.1 * torch.rand(batch, size, size, 3, generator=g, device=device) - 0.05
    return (base + noise).clamp(0.1, 0.9)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_every_op_keeps_shape_dtype_range_and_is_seeded(name, dtype, device):
    floats = _smooth_images(8, 24, device)
    images = (floats * 255).round().to(torch.uint8) if dtype == torch.uint8 else floats
    first, goal = OPS[name]([images, images.clone()], torch.Generator(device).manual_seed(5))
    again, _ = OPS[name]([images, images.clone()], torch.Generator(device).manual_seed(5))
    other, _ = OPS[name]([images, images.clone()], torch.Generator(device).manual_seed(6))
    assert first.shape == images.shape and first.dtype == dtype and first.device == images.device
    if dtype == torch.float32:
        assert first.min() >= 0 and first.max() <= 1
    assert torch.equal(first, again)  # the same generator state, the same pixels
    assert not torch.equal(first, other)
    changed = (first.float() - images.float()).abs().flatten(1).amax(1) > 0
    assert changed.all(), f"{name} left samples {(~changed).nonzero().flatten().tolist()} unchanged"
    if name != "noise":  # the same parameters for observation and goal (noise: its own field each)
        assert torch.equal(first, goal)


def _coordinate_grid(batch, size):
    """Float images whose channels 0/1 hold each pixel's column/row about the centre (pixels), 2: zero."""
    centre = (size - 1) / 2
    coords = torch.arange(size, dtype=torch.float32) - centre
    cols, rows = coords[None, :].expand(size, size), coords[:, None].expand(size, size)
    return torch.stack([cols, rows, torch.zeros(size, size)], -1).expand(batch, -1, -1, -1).contiguous()


def test_rotate_turns_each_sample_about_the_centre_within_its_range():
    size, degrees = 33, 8.0
    grid = _coordinate_grid(64, size)
    turned, turned_goal = random_rotate([grid, grid.clone()], torch.Generator().manual_seed(7), degrees=degrees)
    assert torch.equal(turned, turned_goal)
    # Output pixel p reads the source at R p: its (col, row) values give the turn's angle.
    r, c = size // 2 - 10, size // 2  # a point 10 pixels above the centre, far from the edges
    source = turned[:, r, c, :2]
    angles = torch.rad2deg(torch.atan2(source[:, 0], -source[:, 1]))
    radius = source.norm(dim=1)
    assert torch.allclose(radius, torch.full_like(radius, 10.0), atol=0.05)  # a turn: distances kept
    assert angles.abs().max() <= degrees + 0.05 and angles.std() > degrees / 4  # within range, spread
    centre = size // 2
    torch.testing.assert_close(turned[:, centre, centre, :2], torch.zeros(64, 2), atol=1e-4, rtol=0)
    (still,) = random_rotate([grid], torch.Generator().manual_seed(7), degrees=0.0)
    torch.testing.assert_close(still, grid, atol=1e-4, rtol=0)


def test_blur_smooths_by_a_per_sample_sigma_and_keeps_constants():
    g = torch.Generator().manual_seed(8)
    flat = torch.full((3, 16, 16, 3), 0.4)
    (blurred_flat,) = gaussian_blur([flat], g, sigma=(0.5, 2.0))
    torch.testing.assert_close(blurred_flat, flat, atol=1e-6, rtol=0)  # kernels sum to 1, edges replicated
    images = torch.randint(0, 256, (16, 20, 20, 3), dtype=torch.uint8, generator=g)
    (sharp,) = gaussian_blur([images], g, sigma=(0.0, 0.0))
    assert torch.equal(sharp, images)  # sigma 0: nothing blurred
    (blurred,) = gaussian_blur([images], g, sigma=(0.3, 2.0))
    roughness = lambda x: x.float().diff(dim=2).abs().mean((1, 2, 3))  # noqa: E731
    assert (roughness(blurred) < roughness(images)).all()
    assert roughness(blurred).std() > 0.1 * roughness(blurred).mean()  # sigmas differ per sample
    means = blurred.float().mean((1, 2, 3)) - images.float().mean((1, 2, 3))
    assert means.abs().max() < 3  # brightness kept (up to the replicated edges)


def test_noise_std_is_drawn_per_sample_and_each_tensor_has_its_own_field():
    g = torch.Generator().manual_seed(9)
    grey = torch.full((32, 32, 32, 3), 0.5)
    noisy_obs, noisy_goal = gaussian_noise([grey, grey.clone()], g, std=10.0)
    assert not torch.equal(noisy_obs, noisy_goal)
    obs_std = (noisy_obs - 0.5).flatten(1).std(1) * 255
    goal_std = (noisy_goal - 0.5).flatten(1).std(1) * 255
    assert (obs_std <= 10.5).all() and obs_std.max() > 5 and obs_std.min() < 5
    torch.testing.assert_close(obs_std, goal_std, atol=0.5, rtol=0.05)  # the same std for both
    (clean,) = gaussian_noise([grey], g, std=0.0)
    assert torch.equal(clean, grey)


def _augment_once(cfg, images, seed=11):
    agent = make_agent("gcbc", cfg, tuple(images[0].shape[1:]), 7, "cpu")
    sampler = Sampler(synthetic_dataset(), "cpu", seed=seed)
    return agent.augment(sampler, images), sampler


def test_default_augmentation_is_the_paper_shift_bit_for_bit():
    """The default config and the paper/cpu profiles augment with random_shift alone, drawing the
    same random numbers as before the other switches existed (and nothing else)."""
    images = [torch.randint(0, 256, (16, 32, 32, 3), dtype=torch.uint8) for _ in range(2)]
    for overrides in ([], PROFILES["paper"].overrides_for("gcbc"), PROFILES["cpu"].overrides_for("gcbc")):
        cfg = apply_overrides(default_config("gcbc"), [*overrides, *TINY, "augment_prob=1"])
        assert cfg.augment_shift and not any(getattr(cfg, s) for n, s in AUGMENTATIONS.items() if n != "shift")
        out, sampler = _augment_once(cfg, images)
        reference = Sampler(synthetic_dataset(), "cpu", seed=11)
        batch_coin(1.0, reference.host_generator)
        expected = random_shift(images, 4, reference.generator)
        assert all(torch.equal(a, b) for a, b in zip(out, expected))
        assert torch.equal(sampler.generator.get_state(), reference.generator.get_state())  # no extra draws


def test_switches_and_ranges_reach_the_ops():
    images = [torch.full((8, 16, 16, 3), 128, dtype=torch.uint8)]
    only_noise = apply_overrides(default_config("gcbc"), TINY + augment_overrides(["noise"]) + ["augment_prob=1"])
    (out,), _ = _augment_once(only_noise, images)
    assert not torch.equal(out, images[0])
    silent = apply_overrides(only_noise, ["augment_noise_std=0"])
    (out,), _ = _augment_once(silent, images)
    assert torch.equal(out, images[0])  # the range is what the op uses; a flat image hides the others
    robust = apply_overrides(default_config("stable_crl"), PROFILES["cpu_robust"].overrides_for("stable_crl"))
    assert [n for n, s in AUGMENTATIONS.items() if getattr(robust, s)] == ["shift", "crop", "rotate",
                                                                           "color_jitter", "noise"]
    assert PROFILES["cpu_robust"].steps == PROFILES["cpu"].steps


def test_goal_apart_gives_that_fraction_of_goals_their_own_draw():
    """augment_goal_apart: a goal captured before the camera moved. 0 keeps one draw for the
    observation and the goal of a sample, bit for bit; p > 0 gives about p of the goals a
    second draw (here obs and goal are the same images, so a shared draw leaves them equal)."""
    same = torch.randint(0, 256, (400, 24, 24, 3), dtype=torch.uint8)
    base = apply_overrides(default_config("gcbc"), [*TINY, "augment_prob=1", *augment_overrides(["crop", "rotate",
                                                                                                  "color_jitter"])])
    (obs0, goal0), s0 = _augment_once(base, [same, same])
    assert torch.equal(obs0, goal0)
    for fraction in (0.0, 0.5, 1.0):
        cfg = apply_overrides(base, [f"augment_goal_apart={fraction}"])
        agent = make_agent("gcbc", cfg, (24, 24, 3), 7, "cpu")
        sampler = Sampler(synthetic_dataset(), "cpu", seed=11)
        obs, goal = agent.augment(sampler, [same, same], [False, True])
        assert torch.equal(obs, obs0)   # the observation's draw is the one it always had
        apart = (obs != goal).flatten(1).any(1).float().mean().item()
        assert {0.0: apart == 0.0, 0.5: 0.38 < apart < 0.62, 1.0: apart > 0.97}[fraction], (fraction, apart)
        if fraction == 0.0:
            assert torch.equal(sampler.generator.get_state(), s0.generator.get_state())  # no extra draws
    with pytest.raises(ValueError, match="augment_goal_apart must be in"):
        apply_overrides(base, ["augment_goal_apart=1.5"])
    with pytest.raises(ValueError, match="none is on"):   # with the shift alone there is nothing to draw apart
        apply_overrides(default_config("gcbc"), ["augment_goal_apart=0.5"])


def test_augment_names_and_bad_ranges():
    assert augment_overrides(["none"]) == ["augment=false"]
    on = augment_overrides(["shift", " rotate"])
    assert "augment_rotate=true" in on and "augment_shift=true" in on and "augment_noise=false" in on
    with pytest.raises(ValueError, match="unknown augmentation.*warp"):
        augment_overrides(["shift", "warp"])
    for bad, problem in [("augment_crop_scale=[0.9, 0.5]", "augment_crop_scale"),
                         ("augment_rotate_deg=90", "augment_rotate_deg"), ("augment_hue=-0.1", "augment_hue"),
                         ("augment_blur_sigma=[0, 9]", "augment_blur_sigma")]:
        with pytest.raises(ValueError, match=problem):
            apply_overrides(default_config("gcbc"), [bad])


def test_old_checkpoints_keep_the_old_augmentation():
    """A config saved before the new switches trains on (fine-tune, resume) as it did: the
    missing switches are off and the ranges are the ones the ops had."""
    legacy = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_model_step8500.pt"
    meta = load_checkpoint(legacy).meta
    assert not any(k in meta.config for k in ("augment_rotate", "augment_noise", "augment_blur", "augment_hue"))
    cfg = config_from_checkpoint(meta.algorithm, meta.config)
    assert [n for n, s in AUGMENTATIONS.items() if getattr(cfg, s)] == ["shift"] and cfg.augment_pad == 4
    assert (cfg.augment_crop_scale, cfg.augment_brightness, cfg.augment_contrast, cfg.augment_hue) == (
        (0.8, 1.0), 0.2, 0.2, 0.1)


def test_crl_train_augment_is_saved_in_the_checkpoint(tmp_path, capsys):
    from crl_ros.cli import main

    data = write_tiny_dataset(tmp_path / "tiny.h5")
    common = ["--data", str(data), "--algo", "gcbc", "--steps", "2", "--batch-size", "8", "--device", "cpu",
              "--no-progress", "--set", *TINY]
    assert main(["train", *common, "--out", str(tmp_path / "a"), "--augment", "rotate,noise",
                 "--set", "augment_rotate_deg=3"]) == 0
    saved = load_checkpoint(tmp_path / "a" / "model.pt").meta.config
    assert {n for n, s in AUGMENTATIONS.items() if saved[s]} == {"rotate", "noise"}
    assert saved["augment"] and saved["augment_rotate_deg"] == 3.0
    # fine-tuning with --augment: the model's config, the new augmentations
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "b"), "--init-from",
                 str(tmp_path / "a" / "model.pt"), "--steps", "1", "--no-progress", "--augment", "shift,blur"]) == 0
    tuned = load_checkpoint(tmp_path / "b" / "model.pt").meta.config
    assert {n for n, s in AUGMENTATIONS.items() if tuned[s]} == {"shift", "blur"}
    assert {k: v for k, v in tuned.items() if not k.startswith("augment")} == {
        k: v for k, v in saved.items() if not k.startswith("augment")}
    capsys.readouterr()
    assert main(["train", *common, "--out", str(tmp_path / "c"), "--augment", "shift,fog"]) == 2
    assert "--augment: unknown augmentation(s) fog" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "a"), "--resume", "--steps", "3", "--augment", "shift"]) == 2
    assert "drop --profile/--config/--set/--batch-size/--augment" in capsys.readouterr().err
