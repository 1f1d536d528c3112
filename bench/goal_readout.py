"""Can the `cpu` profile's conv encoder read a `reach` goal's position from one goal image?

A supervised probe, not the method: the encoder (the `cpu` profile's channels, kernels and
strides) and a 256-wide head regress the goal's end-effector xyz from the goal image alone,
trained on goal images of `--train-goals` reach resets (seeds 10,000 on, never the
evaluation's) and tested on the 100 goals of `crl eval`'s reach episodes (seed 100). The
error is split along the policy camera's ray to the goal (the depth one image shows least)
and across it, as `bench/reach_precision.py` splits a policy's closest approach. If the probe
reads the goal to well inside the 3 cm tolerance, a policy that misses by more is limited by
its learning, not by what the image holds.

    python bench/goal_readout.py [--sizes 48] [--train-goals 4000] [--steps 4000] [--augment]
    python bench/goal_readout.py --encoder-from models/widowx_stable_crl.pt   # a trained policy's encoder

With ``--encoder-from MODEL`` the encoder is a trained policy's, frozen, fed what the policy sees
at an episode's first step (the start observation and the goal image, stacked), and only the
head is trained: does the policy's own representation still hold the goal's position? The
result also gives, as bench/reach_precision.py does for a policy, the read-out's error along the
ray per third of the goal heights and its correlation with the goal's height.

Writes bench/results/goal_readout.json (or --out).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # run as a script: bench_common sits beside it
from bench_common import machine, write_result  # noqa: E402
from reach_precision import by_goal_height, ray_split  # noqa: E402

from crl_ros.learning.agents.gcbc import GCBCConfig  # noqa: E402
from crl_ros.learning.augment import random_shift  # noqa: E402
from crl_ros.learning.config import apply_overrides  # noqa: E402
from crl_ros.learning.networks import ConvEncoder, images_to_float  # noqa: E402
from crl_ros.learning.policy import Policy  # noqa: E402
from crl_ros.learning.profiles import PROFILES  # noqa: E402
from crl_ros.sim import widowx  # noqa: E402
from crl_ros.sim.rollout import episode_seed  # noqa: E402

OUT = HERE / "results" / "goal_readout.json"
TRAIN_SEED0 = 10_000


def goal_images(seeds, sizes, starts: bool = False):
    """Goal observations (as the env gives them, per size) and goal xyz of reach resets; with
    `starts`, also the start observations at the smallest size (what a policy sees first)."""
    env = widowx.make_env("reach", image_size=min(sizes))
    images = {s: [] for s in sizes}
    xyz, first = [], []
    try:
        for seed in tqdm(seeds, desc="goal images", leave=False):
            obs, _ = env.reset(seed=int(seed))
            first.append(obs["image"])
            for s in sizes:
                images[s].append(env.sim.goal_image(s, s, env.camera, observation=True, supersample=env.supersample))
            xyz.append(np.asarray(env.sim.goal_scene.ee_xyz, float))
    finally:
        env.close()
    out = ({s: np.stack(v) for s, v in images.items()}, np.stack(xyz))
    return (*out, np.stack(first)) if starts else out


def _head(in_dim: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, width), nn.LayerNorm(width), nn.ReLU(),
                         nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 3))


def _fit(net, inputs, train_xyz, steps, generator, desc, transform=None):
    """Adam 3e-4, batch 128, MSE on z-scored xyz; returns (predict(inputs) -> xyz, last loss)."""
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-4)
    mu, sd = train_xyz.mean(0), train_xyz.std(0)
    targets = torch.from_numpy((train_xyz - mu) / sd).float()
    loss = torch.zeros(())
    for _ in tqdm(range(steps), desc=desc, leave=False):
        index = torch.randint(0, len(inputs), (128,), generator=generator)
        batch = inputs[index] if transform is None else transform(inputs[index])
        loss = ((net(batch) - targets[index]) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    def predict(x):
        with torch.no_grad():
            return net(x).numpy() * sd + mu
    return predict, float(loss.detach())


def _score(predicted, test_xyz) -> dict:
    along, across = ray_split(predicted - test_xyz, test_xyz)
    distance = np.linalg.norm(predicted - test_xyz, axis=1)
    height = by_goal_height([{"goal_xyz": list(g), "closest_along_ray_cm": 100 * float(a), "success": bool(d < 0.03)}
                             for g, a, d in zip(test_xyz, along, distance)])
    return {"rms_along_ray_cm": 100 * float(np.sqrt((along ** 2).mean())),
            "rms_across_ray_per_axis_cm": 100 * float(np.sqrt((across ** 2).mean() / 2)),
            "median_error_cm": 100 * float(np.median(distance)),
            "within_3cm": float((distance < 0.03).mean()),
            "by_goal_height": height}


def probe(train_images, train_xyz, test_images, test_xyz, steps: int, augment: bool, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    size = train_images.shape[1]
    cfg = apply_overrides(GCBCConfig(), PROFILES["cpu"].overrides_for("gcbc"))  # the cpu profile's sizes
    encoder = ConvEncoder((size, size), 3, cfg)
    net = nn.Sequential(encoder, _head(encoder.output_dim, cfg.hidden_width))
    start = time.time()
    # augment: the training's random shift (pad 4), the same for every image of a sample
    transform = (lambda b: images_to_float(random_shift([b], 4, generator)[0])) if augment else images_to_float
    predict, loss = _fit(net, torch.from_numpy(train_images), train_xyz, steps, generator, f"probe {size}px", transform)
    predicted = predict(images_to_float(torch.from_numpy(test_images)))
    return {"image_size": size, "augment": augment, "steps": steps, "train_s": round(time.time() - start, 1),
            "final_train_loss": loss, **_score(predicted, test_xyz)}


def frozen_probe(policy: Policy, train, test, steps: int, seed: int = 0) -> dict:
    """The read-out from `policy`'s encoder, frozen: `train` and `test` are (start observations,
    goal images, goal xyz); the encoder sees both images stacked, as the policy does."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    encoder = policy.agent.policy.encoder.eval()

    def features(starts, goals):
        stacked = torch.cat([images_to_float(torch.from_numpy(starts)), images_to_float(torch.from_numpy(goals))], 1)
        with torch.no_grad():
            return torch.cat([encoder(chunk) for chunk in stacked.split(256)])
    start = time.time()
    train_features, test_features = features(*train[:2]), features(*test[:2])
    net = _head(train_features.shape[1], policy.agent.config.hidden_width)
    predict, loss = _fit(net, train_features, train[2], steps, generator, "frozen probe")
    return {"image_size": int(train[1].shape[1]), "steps": steps,
            "train_s": round(time.time() - start, 1), "final_train_loss": loss, **_score(predict(test_features), test[2])}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="48", help="comma-separated image sizes")
    p.add_argument("--train-goals", type=int, default=4000)
    p.add_argument("--test-goals", type=int, default=100, help="crl eval's reach goals, seed 100")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--augment", action="store_true", help="random shift (pad 4) on the training images")
    p.add_argument("--encoder-from", metavar="MODEL", help="probe this trained policy's encoder, frozen")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sizes = [int(s) for s in args.sizes.split(",")]
    task_key = widowx.TASKS.index("reach")
    train_seeds = range(TRAIN_SEED0, TRAIN_SEED0 + args.train_goals)
    test_seeds = [episode_seed(100, task_key, i) for i in range(args.test_goals)]
    if args.encoder_from:
        policy = Policy.load(args.encoder_from, device="cpu")
        size = policy.image_shape[0]
        train_images, train_xyz, train_starts = goal_images(train_seeds, [size], starts=True)
        test_images, test_xyz, test_starts = goal_images(test_seeds, [size], starts=True)
        rows = [{"encoder_from": args.encoder_from,
                 **frozen_probe(policy, (train_starts, train_images[size], train_xyz),
                                (test_starts, test_images[size], test_xyz), args.steps)}]
    else:
        train_images, train_xyz = goal_images(train_seeds, sizes)
        test_images, test_xyz = goal_images(test_seeds, sizes)
        rows = [probe(train_images[s], train_xyz, test_images[s], test_xyz, args.steps, args.augment) for s in sizes]
    result = {"machine": machine(torch=torch.__version__), "train_goals": args.train_goals,
              "test_goals": args.test_goals, "probes": rows}
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
