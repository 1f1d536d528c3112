"""Policy API: checkpoint round trip, un-normalisation, batching, input errors, NaN guard."""
import numpy as np
import pytest
import torch

from crl_ros.learning.agents import default_config, make_agent
from crl_ros.learning.agents.common import LEGACY_VALUES
from crl_ros.learning.checkpoint import CheckpointError, CheckpointMeta, save_checkpoint
from crl_ros.learning.config import apply_overrides, config_to_dict
from crl_ros.learning.policy import Policy, PolicyInputError, resolve_device

SHAPE = (32, 32, 3)
TINY = ["hidden_width=32", "hidden_depth=2", "encoder_channels=[8,8,8]", "batch_size=16"]
MEAN, STD = [0.5, -1.0], [2.0, 0.25]


def _policy(algo, low=(-2.0, -2.0), high=(2.0, 2.0), extra=(), names=("vx", "vy"), gripper=None):
    torch.manual_seed(0)
    cfg = apply_overrides(default_config(algo), TINY + list(extra))
    agent = make_agent(algo, cfg, SHAPE, 2, "cpu")
    with torch.no_grad():  # move off the (cold) init so outputs are not all ~0
        for p in agent.parameters():
            p.add_(0.05 * torch.randn_like(p))
    agent.eval()
    meta = CheckpointMeta(algorithm=algo, config=config_to_dict(cfg), image_shape=SHAPE, action_dim=2,
                          action_names=list(names), action_mean=MEAN, action_std=STD,
                          action_low=list(low) if low else None, action_high=list(high) if high else None, step=5)
    return Policy(agent, meta, "cpu", gripper=gripper)


def _images(n=None, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, SHAPE if n is None else (n, *SHAPE), dtype=np.uint8)


@pytest.mark.parametrize("algo", ["stable_crl", "gcbc", "gciql"])
def test_checkpoint_round_trip(tmp_path, algo):
    policy = _policy(algo)
    path = save_checkpoint(tmp_path / "model.pt", policy.meta, policy.agent.state_dict())
    loaded = Policy.load(path, device="cpu")
    obs, goal = _images(4, 1), _images(4, 2)
    assert np.array_equal(loaded.act(obs, goal), policy.act(obs, goal))
    assert loaded.algorithm == algo and loaded.image_shape == SHAPE and loaded.action_dim == 2
    assert loaded.action_names == ["vx", "vy"] and loaded.metadata["step"] == 5
    assert loaded.device == torch.device("cpu") and not loaded.agent.training
    if algo == "gcbc":
        assert loaded.score(obs, goal) is None
    else:
        np.testing.assert_array_equal(loaded.score(obs, goal), policy.score(obs, goal))
    assert Policy.load(tmp_path, device="auto").algorithm == algo  # a run directory works too


def test_actions_are_unnormalised_and_clipped():
    policy = _policy("gcbc", low=None, high=None)
    obs, goal = _images(3, 1), _images(3, 2)
    with torch.no_grad():
        normalised = policy.agent.act(torch.from_numpy(obs), torch.from_numpy(goal)).numpy()
    np.testing.assert_allclose(policy.act(obs, goal, sample=False), normalised * STD + MEAN, rtol=1e-6)
    assert np.ptp(normalised) > 1e-3  # the check above is not trivially about constants
    bounded = _policy("gcbc", low=(0.4, -1.01), high=(0.6, -0.99))
    for sample in (False, True):  # the authors clip their samples too
        actions = bounded.act(obs, goal, sample=sample)
        assert (actions >= np.float32([0.4, -1.01])).all() and (actions <= np.float32([0.6, -0.99])).all()
        assert not np.array_equal(bounded.act(obs, goal, sample=False, clip=False), actions)


def test_single_and_batched_inputs():
    policy = _policy("stable_crl")
    obs, goal = _images(5, 1), _images(5, 2)
    batch = policy.act(obs, goal, sample=False)
    assert batch.shape == (5, 2) and batch.dtype == np.float32
    single = policy.act(obs[2], goal[2], sample=False)
    assert single.shape == (2,)
    np.testing.assert_allclose(single, batch[2], rtol=1e-5, atol=1e-6)
    one_goal = policy.act(obs, goal[0], sample=False)  # one goal for a batch of observations
    np.testing.assert_allclose(one_goal[3], policy.act(obs[3], goal[0], sample=False), rtol=1e-5, atol=1e-6)
    assert policy.act(obs, goal).shape == (5, 2) and policy.act(obs[2], goal[2]).shape == (2,)
    score = policy.score(obs[0], goal[0])
    assert isinstance(score, float) and np.isfinite(score)
    assert policy.score(obs, goal).shape == (5,)


def test_sampling_differs_from_the_mean():
    policy = _policy("gcbc", low=None, high=None)
    obs, goal = _images(64, 1), _images(64, 2)
    mean = policy.act(obs, goal, sample=False)
    sampled = policy.act(obs, goal, sample=True)
    spread = (sampled - mean) / np.asarray(STD)
    assert 0.1 < spread.std() < 0.2  # policy_std 0.15 in the units of the checkpoint's actions


@pytest.mark.parametrize("algo", ["stable_crl", "gcbc", "gciql"])
def test_act_follows_the_models_eval_sample_and_is_reproducible_when_seeded(algo):
    policy = _policy(algo, low=None, high=None)
    assert policy.agent.config.eval_sample is True and policy.samples_by_default  # the authors' evaluation
    obs, goal = _images(8, 1), _images(8, 2)
    mean = policy.act(obs, goal, sample=False)
    policy.seed(3)
    first = policy.act(obs, goal)
    assert not np.allclose(first, mean)
    assert not np.array_equal(policy.act(obs, goal), first)  # the stream moves on
    policy.seed(3)
    np.testing.assert_array_equal(policy.act(obs, goal), first)
    torch.manual_seed(123)  # the global RNG plays no part
    policy.seed(3)
    np.testing.assert_array_equal(policy.act(obs, goal, sample=True), first)
    by_mean = _policy(algo, low=None, high=None, extra=["eval_sample=false"])
    assert not by_mean.samples_by_default
    np.testing.assert_array_equal(by_mean.act(obs, goal), by_mean.act(obs, goal, sample=False))
    assert not np.allclose(by_mean.act(obs, goal, sample=True), by_mean.act(obs, goal))


def test_a_checkpoint_saved_before_the_switches_loads_as_it_was_trained(tmp_path):
    """Its config lacks the policy switches: the network is rebuilt with the legacy values
    (no LayerNorm after the last policy layer, torch's LayerNorm, xavier), its actions are un-normalised with
    the stored statistics and it acts with the mean."""
    legacy = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in LEGACY_VALUES.items()]
    old = _policy("stable_crl", extra=legacy)
    config = {k: v for k, v in old.meta.config.items() if k not in LEGACY_VALUES}
    meta = CheckpointMeta(**{**old.meta.to_dict(), "config": config})
    path = save_checkpoint(tmp_path / "old.pt", meta, old.agent.state_dict())
    loaded = Policy.load(path, device="cpu", seed=5)
    for key, value in LEGACY_VALUES.items():
        assert getattr(loaded.agent.config, key) == value
    mean_head = loaded.agent.policy.mean_head
    assert len(mean_head.norms) == len(mean_head.hidden) - 1 and not loaded.samples_by_default
    obs, goal = _images(4, 1), _images(4, 2)
    np.testing.assert_array_equal(loaded.act(obs, goal), old.act(obs, goal, sample=False))
    np.testing.assert_array_equal(loaded.act(obs, goal), loaded.act(obs, goal))
    # the same weights under the current defaults do not fit: the switches change the network
    current = CheckpointMeta(**{**meta.to_dict(), "config": config_to_dict(
        apply_overrides(default_config("stable_crl"), TINY))})
    save_checkpoint(tmp_path / "relabelled.pt", current, old.agent.state_dict())
    with pytest.raises(CheckpointError, match="weights do not match"):
        Policy.load(tmp_path / "relabelled.pt", device="cpu")


@pytest.mark.parametrize("obs, message", [
    (np.zeros(SHAPE, np.float32), "must be uint8 .* got dtype float32"),
    (np.zeros((48, 48, 3), np.uint8), r"shape \(32, 32, 3\) .* got \(48, 48, 3\)"),
    (np.zeros((32, 32), np.uint8), r"got \(32, 32\)"),
    (np.zeros((2, 1, 32, 32, 3), np.uint8), r"got \(2, 1, 32, 32, 3\)"),
    ([[0]], "numpy uint8 array, got list"),
])
def test_bad_inputs_say_what_was_expected(obs, message):
    policy = _policy("gcbc")
    with pytest.raises(PolicyInputError, match=message):
        policy.act(obs, _images())


def test_batch_mismatch():
    policy = _policy("stable_crl")
    with pytest.raises(PolicyInputError, match="obs batch 3 and goal batch 2 differ"):
        policy.act(_images(3), _images(2))
    with pytest.raises(PolicyInputError, match="single obs image"):
        policy.score(_images(), _images(2))


def test_nan_outputs_raise():
    policy = _policy("stable_crl")
    with torch.no_grad():
        for p in policy.agent.parameters():
            p.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite actions"):
        policy.act(_images(), _images())
    with pytest.raises(FloatingPointError, match="non-finite scores"):
        policy.score(_images(), _images())


def test_bad_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        Policy.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00junk" * 100)
    with pytest.raises(CheckpointError, match="not a crl_ros checkpoint"):
        Policy.load(tmp_path / "junk.pt")
    policy = _policy("gcbc")
    weights = policy.agent.state_dict()
    save_checkpoint(tmp_path / "unknown.pt", CheckpointMeta(**{**policy.meta.to_dict(), "algorithm": "dqn"}), weights)
    with pytest.raises(CheckpointError, match="algorithm 'dqn' is unknown"):
        Policy.load(tmp_path / "unknown.pt")
    wider = {**policy.meta.to_dict(), "config": {**policy.meta.config, "hidden_width": 64}}
    save_checkpoint(tmp_path / "mismatch.pt", CheckpointMeta(**wider), weights)
    with pytest.raises(CheckpointError, match="weights do not match"):
        Policy.load(tmp_path / "mismatch.pt")
    broken = {**policy.meta.to_dict(), "config": {**policy.meta.config, "no_such_field": 1}}
    save_checkpoint(tmp_path / "badcfg.pt", CheckpointMeta(**broken), weights)
    with pytest.raises(CheckpointError, match="config does not fit gcbc"):
        Policy.load(tmp_path / "badcfg.pt")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_evaluate_seeds_a_sampling_policy_so_evaluations_repeat():
    from crl_ros.sim.rollout import PolicyActor, evaluate

    class Recording(PolicyActor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.actions = []

        def __call__(self, obs, goal_image):
            self.actions.append(super().__call__(obs, goal_image))
            return self.actions[-1]

    policy = _policy("gcbc", low=None, high=None)
    runs = []
    for sample in (None, None, False):
        actor = Recording(policy, sample=sample)
        evaluate("pointmass", "reach_center", actor, episodes=2, seed=5, image_size=SHAPE[0], max_steps=3)
        policy.act(_images(), _images())  # whatever the policy did in between
        runs.append(np.stack(actor.actions))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert runs[0].shape == runs[2].shape == (6, 2) and not np.allclose(runs[0], runs[2])


def test_the_gripper_is_continuous_by_default_and_binary_snaps_it_at_the_middle_of_its_bounds(tmp_path):
    """eval_gripper: continuous (the authors') sends the network's opening; binary sends the
    gripper's upper bound (open) at or above the middle of its bounds, the lower (closed)
    below, and leaves every other action dimension alone."""
    obs, goal = _images(64, 1), _images(64, 2)
    # bounds whose middle is the untrained network's median opening, so the batch straddles it
    unbounded = _policy("gcbc", low=None, high=None, names=("vx", "gripper"))
    middle = float(np.median(unbounded.act(obs, goal, sample=False)[:, 1]))
    low, high = middle - 0.5, middle + 0.5
    bounds = dict(low=(-2.0, low), high=(2.0, high), names=("vx", "gripper"))
    continuous = _policy("gcbc", **bounds)
    assert continuous.agent.config.eval_gripper == "continuous" and continuous.gripper_mode == "continuous"
    raw = continuous.act(obs, goal, sample=False)
    assert len(np.unique(raw[:, 1])) > 10 and (raw[:, 1] < middle).any() and (raw[:, 1] >= middle).any()
    binary = _policy("gcbc", **bounds, extra=["eval_gripper=binary"])
    assert binary.gripper_mode == "binary"
    snapped = binary.act(obs, goal, sample=False)
    np.testing.assert_array_equal(snapped[:, 0], raw[:, 0])
    np.testing.assert_array_equal(snapped[:, 1], np.where(raw[:, 1] >= (low + high) / 2, high, low).astype(np.float32))
    assert binary.act(obs[0], goal[0], sample=False)[1] == snapped[0, 1]  # a single image too
    binary.seed(1)
    assert set(np.unique(binary.act(obs, goal, sample=True)[:, 1])) == {np.float32(low), np.float32(high)}  # samples snap too
    # the caller's choice wins over the model's, and None restores the model's
    binary.gripper_mode = "continuous"
    np.testing.assert_array_equal(binary.act(obs, goal, sample=False), raw)
    binary.gripper_mode = None
    assert binary.gripper_mode == "binary"
    with pytest.raises(ValueError, match="continuous, binary"):
        binary.gripper_mode = "half"
    # through a checkpoint, and overridden at load time
    path = save_checkpoint(tmp_path / "model.pt", binary.meta, binary.agent.state_dict())
    np.testing.assert_array_equal(Policy.load(path, device="cpu").act(obs, goal, sample=False), snapped)
    np.testing.assert_array_equal(Policy.load(path, device="cpu", gripper="continuous").act(obs, goal, sample=False), raw)
    # a model with no action named "gripper" acts the same in either mode
    plain = _policy("gcbc", extra=["eval_gripper=binary"])
    np.testing.assert_array_equal(plain.act(obs, goal, sample=False), _policy("gcbc").act(obs, goal, sample=False))
    # without bounds the gripper's range is crl_ros's [0, 1]
    unbounded = _policy("gcbc", low=None, high=None, names=("vx", "gripper"), gripper="binary")
    free = _policy("gcbc", low=None, high=None, names=("vx", "gripper")).act(obs, goal, sample=False)
    np.testing.assert_array_equal(unbounded.act(obs, goal, sample=False)[:, 1],
                                  np.where(free[:, 1] >= 0.5, 1.0, 0.0).astype(np.float32))
    with pytest.raises(ValueError, match="eval_gripper must be one of"):
        apply_overrides(default_config("gcbc"), ["eval_gripper=half"])


def test_a_saved_models_acting_settings_change_without_touching_its_weights(tmp_path):
    """set_acting_settings / scripts/model_settings.py: eval_gripper and eval_sample change in
    a saved model; its weights, statistics and training settings do not; a training setting
    (it would change the network) or a bad value is refused and the file is left as it was."""
    import subprocess
    import sys
    from pathlib import Path

    from crl_ros.learning.checkpoint import load_checkpoint, set_acting_settings

    policy = _policy("gcbc", low=(-2.0, -1.6), high=(2.0, -0.4), names=("vx", "gripper"))
    path = save_checkpoint(tmp_path / "model.pt", policy.meta, policy.agent.state_dict())
    before = load_checkpoint(path)
    obs, goal = _images(16, 1), _images(16, 2)
    raw = Policy.load(path, device="cpu").act(obs, goal, sample=False)
    script = Path(__file__).resolve().parents[2] / "scripts" / "model_settings.py"
    done = subprocess.run([sys.executable, str(script), str(path), "eval_gripper=binary", "eval_sample=false"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "mean actions, binary gripper" in done.stdout
    after = load_checkpoint(path)
    assert after.meta.config == {**before.meta.config, "eval_gripper": "binary", "eval_sample": False}
    assert {k: v for k, v in after.meta.to_dict().items() if k != "config"} == \
        {k: v for k, v in before.meta.to_dict().items() if k != "config"}
    assert all(torch.equal(after.model[k], v) for k, v in before.model.items()) and after.model.keys() == before.model.keys()
    changed = Policy.load(path, device="cpu")
    expected = raw.copy()
    expected[:, 1] = np.where(raw[:, 1] >= -1.0, -0.4, -1.6)
    np.testing.assert_array_equal(changed.act(obs, goal), expected)  # the mean now, and a snapped gripper
    for bad, message in ((dict(hidden_width=64), "would change what it was trained as"),
                         (dict(eval_gripper="half"), "eval_gripper must be one of")):
        content = path.read_bytes()
        with pytest.raises(CheckpointError, match=message):
            set_acting_settings(path, bad)
        assert path.read_bytes() == content
    bad = subprocess.run([sys.executable, str(script), str(path), "lr=0.1"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "only the acting settings" in bad.stderr and "Traceback" not in bad.stderr
