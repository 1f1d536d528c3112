"""Simulated WidowX speed: env steps/s with rendering (48x48 and 128x128, one process), and
play-data generation rate (episodes/hour, transitions/s, minutes for 100k transitions).

Steps use random actions in the play scene, resets included; the rate is given per wall-clock
second (overall, and in the fastest of WINDOWS windows) and per CPU-second of the process
(the per-core rate, less sensitive to other load); play data runs the scripted
play policy through crl_ros.sim.rollout.collect_demos, as `crl demos --play` does.
Writes bench/results/sim_speed.json with the machine noted.

    python bench/sim_speed.py [--steps N] [--play-episodes N] [--workers K]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from bench_common import machine
from crl_ros.sim import widowx
from crl_ros.sim.rollout import collect_demos

RESULTS = Path(__file__).resolve().parent / "results" / "sim_speed.json"
WINDOWS = 10  # the step run is timed in this many windows too


def env_steps_per_second(image_size: int, steps: int, supersample: int, seed: int = 0) -> dict[str, float]:
    env = widowx.make_env("play", image_size=image_size, seed=seed, supersample=supersample)
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    action_list = rng.uniform(low, high, size=(steps, len(low))).astype(np.float32)
    obs, _ = env.reset(seed=seed)
    env.step(action_list[0])  # first render creates the GL context: not part of the rate
    window_seconds = []  # the machine is shared: the fastest window is the least disturbed one
    start, start_cpu = time.perf_counter(), time.process_time()
    for window in np.array_split(action_list, WINDOWS):
        window_start = time.perf_counter()
        for action in window:
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        window_seconds.append((time.perf_counter() - window_start) / len(window))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    # where the time goes: physics alone, rendering alone
    sim = env.sim
    start = time.perf_counter()
    for _ in range(200):
        sim.step(1.0 / env.control_rate_hz)
    physics = (time.perf_counter() - start) / 200
    start = time.perf_counter()
    for _ in range(200):
        sim.camera_image(image_size, supersample=supersample)
    render = (time.perf_counter() - start) / 200
    env.close()
    return {"steps_per_s": steps / elapsed, "steps_per_s_best_window": 1.0 / min(window_seconds),
            "steps_per_cpu_s": steps / cpu, "physics_ms_per_step": 1e3 * physics,
            "render_ms_per_frame": 1e3 * render}


def play_data_rate(episodes: int, workers: int) -> dict[str, float]:
    start = time.perf_counter()
    transitions = sum(len(ep["actions"]) for ep in collect_demos("widowx", "play", episodes, seed=0,
                                                                 workers=workers))
    elapsed = time.perf_counter() - start
    return {"episodes": episodes, "workers": workers, "transitions": transitions, "seconds": elapsed,
            "episodes_per_hour": episodes / elapsed * 3600, "transitions_per_s": transitions / elapsed,
            "minutes_per_100k_transitions": 1e5 / (transitions / elapsed) / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--play-episodes", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    results = {"machine": machine(mujoco_gl=os.environ.get("MUJOCO_GL")), "env_steps": {}}
    # supersample 4 (the default) gives camera_node's pixels; 1 is the fast aliased render
    for size, supersample in ((48, widowx.SUPERSAMPLE), (48, 1), (128, widowx.SUPERSAMPLE)):
        key = f"{size}x{size}" + ("" if supersample == widowx.SUPERSAMPLE else f"_supersample{supersample}")
        results["env_steps"][key] = rate = env_steps_per_second(size, args.steps, supersample)
        print(f"{key}: {rate['steps_per_s']:.0f} env steps/s wall-clock ({rate['steps_per_s_best_window']:.0f} in "
              f"the best window), {rate['steps_per_cpu_s']:.0f} per CPU-second of one core (physics {rate['physics_ms_per_step']:.2f} ms, "
              f"render {rate['render_ms_per_frame']:.2f} ms)", flush=True)
    results["play_data"] = play = play_data_rate(args.play_episodes, args.workers)
    print(f"play data, {play['workers']} workers: {play['transitions_per_s']:.0f} transitions/s, "
          f"{play['episodes_per_hour']:.0f} episodes/h, {play['minutes_per_100k_transitions']:.1f} min per 100k")
    results["targets"] = {"env_steps_per_s_48": 300, "minutes_per_100k_transitions": 15}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
