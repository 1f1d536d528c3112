"""The learning test: Stable CRL trained offline on point-mass play demos reaches HELD-OUT goals
far more often than a random policy, within a few CPU minutes.

Config: the suite's small network (crl_ros.sim.pointmass.TRAIN_OVERRIDES: batch 128, MLP
width 256, encoder channels 16/32/32, Xavier init of the policy's hidden layers; otherwise
the authors' defaults, cold init, TD critic, raw actions and sampled evaluation actions
included), 1000 play episodes, STEPS gradient steps on the CPU with ONE torch thread (on a
2-core machine shared with other work, two OpenMP threads wait on each other and run ~20x
slower; one thread takes ~0.17 s per step). Evaluation goals are the five fixed task goals,
which no demonstration targets; starts are fixed by the evaluation seed.

Why STEPS is 1800 (docs/results.md, "The point-mass learning test"): at the former 900 steps
the far corners (reach_top_left and reach_top_right need a detour round a wall) were at 0%,
so the mean sat at ~0.45 on the steep part of the learning curve, where an AVX2 CPU's float
rounding gave 0.48 and an AVX-512 CPU's gave >= 0.5. At 1800 steps every task is learnt:
with this config 0.97 / 0.98 (training seed 0, evaluation seeds 123 / 7, 20 episodes per
task), so the thresholds below sit far from what is measured on any kernel path. (With the
authors' uniform +-1e-3 policy init the policy stayed at the mean action: 0% at 1800 steps.)
What this test does NOT show: at this budget the TD critic is still at its cold init (logits
std <= 1e-4, accuracy at chance), so the success comes from the actor's behaviour-cloning
term; the contrastive critic's learning is issue 9's to prove (docs/results.md).
"""
import time

import pytest
import torch

from crl_ros.learning.agents import default_config
from crl_ros.learning.config import apply_overrides
from crl_ros.learning.policy import Policy
from crl_ros.learning.trainer import TrainConfig, train
from crl_ros.sim import pointmass
from crl_ros.sim.rollout import PolicyActor, RandomActor, evaluate, mean_success, write_demos

DEMO_EPISODES = 1000
STEPS = 1800
EVAL_EPISODES = 20  # per task, 5 tasks: 100 episodes


@pytest.fixture
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.timeout(1800)
def test_stable_crl_beats_random_on_held_out_goals(tmp_path, one_torch_thread):
    start = time.perf_counter()
    data = tmp_path / "play.h5"
    write_demos(data, "pointmass", "play", DEMO_EPISODES, seed=0, image_size=48, workers=2)
    demos_s = time.perf_counter() - start

    cfg = apply_overrides(default_config("stable_crl"), pointmass.TRAIN_OVERRIDES)
    result = train([data], "stable_crl", cfg,
                   TrainConfig(steps=STEPS, seed=0, device="cpu", log_every=100, checkpoint_every=STEPS,
                               progress=False), tmp_path / "run")
    train_s = time.perf_counter() - start - demos_s

    policy = Policy.load(result.model_path, device="cpu")
    crl = evaluate("pointmass", "all", PolicyActor(policy), EVAL_EPISODES, seed=123)
    random_ = evaluate("pointmass", "all", RandomActor(seed=0), EVAL_EPISODES, seed=123)
    crl_success, random_success = mean_success(crl), mean_success(random_)
    print(f"\nstable_crl {crl_success:.2f} vs random {random_success:.2f} on held-out goals "
          f"(demos {demos_s:.0f} s, {STEPS} steps in {train_s:.0f} s, total {time.perf_counter() - start:.0f} s); "
          + ", ".join(f"{t} {r['success_rate']:.1f}" for t, r in crl.items()))
    assert random_success <= 0.2
    assert crl_success >= 0.6 and crl_success >= random_success + 0.45
    assert sum(r["success_rate"] >= 0.5 for r in crl.values()) >= 4  # not one easy task carrying the mean
