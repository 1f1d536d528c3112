"""How close a model's arm gets to `reach` goals: per episode of `crl eval`'s reach episodes
(evaluation seed 100, the same starts, goals and action noise), the start-to-goal distance,
the closest approach, where the episode ended and whether it succeeded (3 cm tolerance).
The closest approach's error is also split along the policy camera's ray to the goal (the
depth a single image shows least) and across it; the summary gives the RMS of each.

    python bench/reach_precision.py [--model models/widowx_stable_crl.pt] [--episodes 20]
    python bench/reach_precision.py --summarize RESULT.json ...   # re-summarise saved runs, by goal height

Writes bench/results/reach_precision.json. The summary also splits the episodes by the goal's
height, in thirds of the reach workspace's z range: success and the mean signed error along
the ray per third, and the correlation of the goal's height with that error (a policy that
pulls every goal toward the middle height misses low goals short and high goals beyond).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from crl_ros.learning.policy import Policy
from crl_ros.sim import widowx
from crl_ros.sim.tasks import REACH_WORKSPACE
from crl_ros.sim.rollout import PolicyActor, episode_seed
from crl_ros.sim.widowx_model import CAMERAS

OUT = Path(__file__).resolve().parent / "results" / "reach_precision.json"


def ray_split(error: np.ndarray, goal: np.ndarray, camera: str = "overhead") -> tuple[np.ndarray, np.ndarray]:
    """(signed component along the camera's ray to `goal`, norm of the rest) of `error`, for one
    [3] or a batch [..., 3] of errors and goals: positive along = beyond the goal as the camera
    sees it. Also used by bench/goal_readout.py."""
    ray = goal - np.asarray(CAMERAS[camera]["pos"], float)
    ray = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
    along = (error * ray).sum(-1)
    return along, np.linalg.norm(error - along[..., None] * ray, axis=-1)


def by_goal_height(episodes: list[dict]) -> dict:
    """Success and mean signed along-ray error (cm) of `episodes` in the low, middle and high
    third of the reach workspace's z range, and the correlation of goal z with that error."""
    z = np.array([e["goal_xyz"][2] for e in episodes], float)
    along = np.array([e["closest_along_ray_cm"] for e in episodes], float)
    success = np.array([e["success"] for e in episodes], float)
    low, high = REACH_WORKSPACE[0][2], REACH_WORKSPACE[1][2]
    edges = low + (high - low) * np.array([1 / 3, 2 / 3])
    band = np.digitize(z, edges)  # 0 low, 1 middle, 2 high
    thirds = {}
    for i, name in enumerate(("low", "middle", "high")):
        mask = band == i
        thirds[name] = {"z_m": [round(float(v), 4) for v in ([low, *edges, high][i:i + 2])],
                        "episodes": int(mask.sum()),
                        "success_rate": float(success[mask].mean()) if mask.any() else None,
                        "mean_along_ray_cm": float(along[mask].mean()) if mask.any() else None}
    corr = float(np.corrcoef(z, along)[0, 1]) if len(z) > 2 and z.std() > 0 and along.std() > 0 else None
    return {"thirds": thirds, "corr_goal_z_along_ray": corr}


def summarize(path: str) -> dict:
    """The height split of a saved result file (it is written back into the file)."""
    result = json.loads(Path(path).read_text())
    result["by_goal_height"] = by_goal_height(result["episodes"])
    Path(path).write_text(json.dumps(result, indent=1))
    return result


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models/widowx_stable_crl.pt")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--summarize", nargs="+", metavar="RESULT", help="re-summarise saved result files; no rollouts")
    args = p.parse_args(argv)
    if args.summarize:
        summaries = {}
        for path in args.summarize:
            height = summarize(path)["by_goal_height"]
            summaries[path] = height
            show = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731 (an empty third)
            rates = " / ".join(show(t["success_rate"], ".2f") for t in height["thirds"].values())
            errors = " / ".join(show(t["mean_along_ray_cm"], "+.1f") for t in height["thirds"].values())
            print(f"{path}: success low/middle/high {rates}, along-ray mean {errors} cm, "
                  f"corr(goal z, along) {show(height['corr_goal_z_along_ray'], '.2f')}")
        return summaries
    torch.set_num_threads(1)
    policy = Policy.load(args.model, device="cpu")
    actor = PolicyActor(policy)  # the model's own sampling and gripper settings, as crl eval
    env = widowx.make_env("reach", image_size=policy.image_shape[0])
    task_key = widowx.TASKS.index("reach")
    episodes = []
    try:
        for i in range(args.episodes):  # the seeds crl_ros.sim.rollout.evaluate uses
            actor.seed(episode_seed(args.seed, task_key, i, 1))
            obs, info = env.reset(seed=episode_seed(args.seed, task_key, i))
            goal = np.asarray(env.sim.goal_scene.ee_xyz, float)
            start = np.asarray(env.sim.reading().ee_xyz, float)
            closest, closest_xyz, success, steps = float("inf"), start, False, 0
            while steps < env.max_episode_steps and not success:
                action = np.clip(actor(obs, info["goal_image"]), env.action_space.low, env.action_space.high)
                obs, _, _, _, step_info = env.step(action)
                steps += 1
                ee = np.asarray(env.sim.reading().ee_xyz, float)
                distance = float(np.linalg.norm(ee - goal))
                if distance < closest:
                    closest, closest_xyz = distance, ee
                success = bool(step_info["success"])
            along, across = map(float, ray_split(closest_xyz - goal, goal))
            episodes.append({"episode": i, "success": success, "steps": steps,
                             "start_to_goal_cm": 100 * float(np.linalg.norm(goal - start)),
                             "closest_cm": 100 * closest, "final_cm": 100 * distance,
                             "closest_along_ray_cm": 100 * along, "closest_across_ray_cm": 100 * across,
                             "goal_xyz": [round(float(v), 4) for v in goal]})
            print(episodes[-1], flush=True)
    finally:
        env.close()
    result = {"model": args.model, "seed": args.seed, "gripper": policy.gripper_mode,
              "sampled": policy.samples_by_default, "episodes": episodes,
              "success_rate": float(np.mean([e["success"] for e in episodes])),
              "rms_along_ray_cm": float(np.sqrt(np.mean([e["closest_along_ray_cm"] ** 2 for e in episodes]))),
              # per axis: the across part spans the image plane's two axes
              "rms_across_ray_per_axis_cm": float(np.sqrt(np.mean([e["closest_across_ray_cm"] ** 2
                                                                   for e in episodes]) / 2)),
              "by_goal_height": by_goal_height(episodes)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
