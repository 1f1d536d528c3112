#!/usr/bin/env python3
"""Refresh test/fixtures/bundled_model_actions.npz after models/widowx_stable_crl.pt changes.

    python scripts/make_bundled_fixture.py [--model models/widowx_stable_crl.pt]

Keeps the fixture's observation and goal images and stores the model's mean actions (gripper as
the network gives it, not snapped) and critic scores on them, which
test/test_bundled_model.py::test_bundled_model_acts_exactly_as_when_it_was_made compares against.
Run it only when a new model is bundled on purpose: the test exists to catch every other change.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "test" / "fixtures" / "bundled_model_actions.npz"


def main(argv=None) -> int:
    from crl_ros.learning.policy import Policy

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(REPO / "models" / "widowx_stable_crl.pt"))
    p.add_argument("--fixture", default=str(FIXTURE))
    args = p.parse_args(argv)
    old = np.load(args.fixture)
    obs, goal = old["obs"], old["goal"]
    policy = Policy.load(args.model, device="cpu", gripper="continuous")
    actions = policy.act(obs, goal, sample=False).astype(np.float32)
    scores = np.asarray(policy.score(obs, goal), dtype=np.float32)
    np.savez(args.fixture, obs=obs, goal=goal, actions=actions, scores=scores)
    print(f"wrote {args.fixture}: {len(obs)} samples from {args.model} (step {policy.meta.step})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
