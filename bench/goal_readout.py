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
from reach_precision import ray_split  # noqa: E402

from crl_ros.learning.agents.gcbc import GCBCConfig  # noqa: E402
from crl_ros.learning.augment import random_shift  # noqa: E402
from crl_ros.learning.config import apply_overrides  # noqa: E402
from crl_ros.learning.networks import ConvEncoder, images_to_float  # noqa: E402
from crl_ros.learning.profiles import PROFILES  # noqa: E402
from crl_ros.sim import widowx  # noqa: E402
from crl_ros.sim.rollout import episode_seed  # noqa: E402

OUT = HERE / "results" / "goal_readout.json"
TRAIN_SEED0 = 10_000


def goal_images(seeds, sizes) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Goal observations (as the env gives them, per size) and goal xyz of reach resets."""
    env = widowx.make_env("reach", image_size=min(sizes))
    images = {s: [] for s in sizes}
    xyz = []
    try:
        for seed in tqdm(seeds, desc="goal images", leave=False):
            env.reset(seed=int(seed))
            for s in sizes:
                images[s].append(env.sim.goal_image(s, s, env.camera, observation=True, supersample=env.supersample))
            xyz.append(np.asarray(env.sim.goal_scene.ee_xyz, float))
    finally:
        env.close()
    return {s: np.stack(v) for s, v in images.items()}, np.stack(xyz)


def probe(train_images, train_xyz, test_images, test_xyz, steps: int, augment: bool, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    size = train_images.shape[1]
    cfg = apply_overrides(GCBCConfig(), PROFILES["cpu"].overrides_for("gcbc"))  # the cpu profile's sizes
    encoder = ConvEncoder((size, size), 3, cfg)
    width = cfg.hidden_width
    net = nn.Sequential(encoder, nn.Linear(encoder.output_dim, width), nn.LayerNorm(width), nn.ReLU(),
                        nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 3))
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-4)
    mu, sd = train_xyz.mean(0), train_xyz.std(0)
    images = torch.from_numpy(train_images)
    targets = torch.from_numpy((train_xyz - mu) / sd).float()
    start = time.time()
    for _ in tqdm(range(steps), desc=f"probe {size}px", leave=False):
        index = torch.randint(0, len(images), (128,), generator=generator)
        batch = images[index]
        if augment:  # the training's random shift (pad 4), the same for every image of a sample
            batch = random_shift([batch], 4, generator)[0]
        loss = ((net(images_to_float(batch)) - targets[index]) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        predicted = net(images_to_float(torch.from_numpy(test_images))).numpy() * sd + mu
    along, across = ray_split(predicted - test_xyz, test_xyz)
    distance = np.linalg.norm(predicted - test_xyz, axis=1)
    return {"image_size": size, "augment": augment, "steps": steps, "train_s": round(time.time() - start, 1),
            "final_train_loss": float(loss.detach()),
            "rms_along_ray_cm": 100 * float(np.sqrt((along ** 2).mean())),
            "rms_across_ray_per_axis_cm": 100 * float(np.sqrt((across ** 2).mean() / 2)),
            "median_error_cm": 100 * float(np.median(distance)),
            "within_3cm": float((distance < 0.03).mean())}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="48", help="comma-separated image sizes")
    p.add_argument("--train-goals", type=int, default=4000)
    p.add_argument("--test-goals", type=int, default=100, help="crl eval's reach goals, seed 100")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--augment", action="store_true", help="random shift (pad 4) on the training images")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sizes = [int(s) for s in args.sizes.split(",")]
    task_key = widowx.TASKS.index("reach")
    train_images, train_xyz = goal_images(range(TRAIN_SEED0, TRAIN_SEED0 + args.train_goals), sizes)
    test_images, test_xyz = goal_images([episode_seed(100, task_key, i) for i in range(args.test_goals)], sizes)
    rows = [probe(train_images[s], train_xyz, test_images[s], test_xyz, args.steps, args.augment) for s in sizes]
    result = {"machine": machine(torch=torch.__version__), "train_goals": args.train_goals,
              "test_goals": args.test_goals, "probes": rows}
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
