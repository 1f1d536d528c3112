import numpy as np
import pytest
import torch
from synthetic_data import synthetic_dataset

from crl_ros.learning.sampler import Sampler

GAMMA = 0.9


@pytest.fixture(scope="module")
def dataset():
    return synthetic_dataset()


def _episode_of(dataset, frames):
    return np.searchsorted(dataset.episode_ends, frames, side="right")


def test_transitions_have_a_next_frame(dataset):
    sampler = Sampler(dataset, "cpu", seed=0)
    idx = sampler.sample_transitions(5000).numpy()
    assert dataset.transition_mask()[idx].all()
    assert len(np.unique(idx)) == dataset.transition_mask().sum()


def test_actions_are_raw_by_default(dataset):
    sampler = Sampler(dataset, "cpu", seed=0)
    assert not sampler.normalizes_actions
    np.testing.assert_array_equal(sampler.action_mean, 0.0)
    np.testing.assert_array_equal(sampler.action_std, 1.0)
    frames = torch.arange(dataset.num_frames)
    np.testing.assert_array_equal(sampler.actions(frames).numpy(), dataset.actions.astype(np.float32))
    valid = dataset.transition_mask()
    np.testing.assert_allclose(sampler.raw_action_std, dataset.actions[valid].std(0), rtol=1e-5)


def test_action_normalisation(dataset):
    sampler = Sampler(dataset, "cpu", seed=0, normalize_actions=True)
    assert sampler.normalizes_actions
    valid = dataset.transition_mask()
    np.testing.assert_allclose(sampler.action_mean, dataset.actions[valid].mean(0), rtol=1e-5)
    normalised = sampler.actions(torch.from_numpy(np.nonzero(valid)[0])).numpy()
    np.testing.assert_allclose(normalised.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalised.std(0), 1.0, atol=1e-4)
    given = Sampler(dataset, "cpu", action_mean=np.zeros(7), action_std=np.zeros(7))
    assert (given.action_std >= 1e-6).all() and np.isfinite(given.actions(torch.arange(5)).numpy()).all()


def test_geometric_future_follows_truncated_law(dataset):
    sampler = Sampler(dataset, "cpu", seed=1)
    # Episodes end at 20, 55, 57, 100: max offsets 11, 3, 0 and 41, so the truncation bites.
    starts = [7, 50, 53, 57]
    draws = 40000
    for start in starts:
        end = dataset.episode_end_of_frame()[start]
        max_offset = end - start - 2
        goals = sampler.geometric_future(torch.full((draws,), int(start)), GAMMA).numpy()
        offsets = goals - start - 1
        assert offsets.min() >= 0 and offsets.max() <= max_offset
        assert (_episode_of(dataset, goals) == _episode_of(dataset, start)).all()
        expected = GAMMA ** np.arange(max_offset + 1)
        expected = draws * expected / expected.sum()
        observed = np.bincount(offsets, minlength=max_offset + 1)
        chi2 = ((observed - expected) ** 2 / expected).sum()
        # 99.9% quantile of chi-square with dof = max_offset is below dof + 4 sqrt(2 dof) + 10.
        dof = max(max_offset, 1)
        assert chi2 < dof + 4 * np.sqrt(2 * dof) + 10, (start, chi2, observed[:5], expected[:5])


def test_future_goals_never_cross_episodes(dataset):
    sampler = Sampler(dataset, "cpu", seed=2)
    idx = sampler.sample_transitions(20000)
    for goals in (sampler.geometric_future(idx, 0.99), sampler.uniform_future(idx)):
        goals, start = goals.numpy(), idx.numpy()
        assert (goals > start).all()
        assert (_episode_of(dataset, goals) == _episode_of(dataset, start)).all()


def test_uniform_future_is_uniform(dataset):
    sampler = Sampler(dataset, "cpu", seed=3)
    start = 60  # episode [57, 100): goals 61..99, 39 values
    goals = sampler.uniform_future(torch.full((39000,), start)).numpy()
    counts = np.bincount(goals - start - 1)
    assert len(counts) == 39 and counts.min() > 800 and counts.max() < 1200


def test_random_goals_cover_dataset(dataset):
    goals = Sampler(dataset, "cpu", seed=4).random_goals(20000).numpy()
    assert goals.min() == 0 and goals.max() == dataset.num_frames - 1


def test_state_round_trip_reproduces_samples(dataset):
    sampler = Sampler(dataset, "cpu", seed=5)
    sampler.sample_transitions(10)
    state = sampler.state_dict()

    def draw(s):
        idx = s.sample_transitions(64)
        return idx, s.geometric_future(idx, 0.99), s.uniform_future(idx), s.random_goals(8), s.standard_normal((3,))
    first = draw(sampler)
    resumed = Sampler(dataset, "cpu", seed=123)
    resumed.load_state_dict(state)
    for a, b in zip(first, draw(resumed)):
        assert torch.equal(a, b)
    assert not torch.equal(first[0], draw(sampler)[0])


def test_images_and_actions_gather(dataset):
    sampler = Sampler(dataset, "cpu", seed=6)
    idx = torch.tensor([0, 5, 99])
    assert sampler.images(idx).dtype == torch.uint8
    assert np.array_equal(sampler.images(idx).numpy(), dataset.images[idx.numpy()])
    assert sampler.actions(idx).dtype == torch.float32


def test_frame_weights_draw_each_source_in_proportion(dataset):
    # two "files": frames [0, 55) and [55, 100); the second weighted 3x
    import dataclasses
    two = dataclasses.replace(dataset, source_ends=np.array([55, dataset.num_frames]))
    weights = two.source_frame_weights([1, 3])
    sampler = Sampler(two, "cpu", seed=0, frame_weights=weights)
    idx = sampler.sample_transitions(200_000).numpy()
    assert two.transition_mask()[idx].all()
    valid = two.transition_mask()
    first, second = valid[:55].sum(), valid[55:].sum()
    expected = first / (first + 3 * second)
    assert abs((idx < 55).mean() - expected) < 0.01  # 200k draws: std 0.001
    # within a source the draws stay uniform
    counts = np.bincount(idx, minlength=two.num_frames)[55:][valid[55:]]
    assert counts.min() > 0.8 * counts.mean()


def test_frame_weight_zero_is_never_drawn_and_bad_weights_are_refused(dataset):
    import dataclasses
    from crl_ros.learning.dataset import DatasetError
    two = dataclasses.replace(dataset, source_ends=np.array([55, dataset.num_frames]))
    idx = Sampler(two, "cpu", seed=0, frame_weights=two.source_frame_weights([0, 1])).sample_transitions(5000)
    assert idx.min() >= 55
    for bad in ([1], [1, 2, 3], [-1, 1], [0, 0], [float("nan"), 1]):
        with pytest.raises(DatasetError, match="data weights"):
            two.source_frame_weights(bad)


def test_equal_frame_weights_are_the_unweighted_distribution(dataset):
    sampler = Sampler(dataset, "cpu", seed=0, frame_weights=dataset.source_frame_weights([2.5]))
    idx = sampler.sample_transitions(50_000).numpy()
    counts = np.bincount(idx, minlength=dataset.num_frames)[dataset.transition_mask()]
    assert counts.min() > 0.7 * counts.mean() and counts.max() < 1.3 * counts.mean()
