"""Suite-agnostic episode helpers: run an actor, evaluate it per task, collect demos, write GIFs.

An *actor* is a callable ``actor(obs, goal_image) -> action`` where ``obs`` is the env's
observation dict (``"image"``, ``"state"``). If it has a ``reset(env)`` method, that is
called after every ``env.reset`` (scripted experts plan there); if it has a ``seed(n)``
method, `evaluate` calls it before every episode (a sampling policy then draws the same
actions for the same evaluation seed). Executed actions are clipped to the env's action
bounds. This module imports no torch.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from crl_ros.learning.gripper import snap_gripper
from crl_ros.sim.suites import get_suite

Actor = Callable[[dict, np.ndarray], np.ndarray]

#: the held-out protocol (docs/results.md, "Held-out protocol and shifts"): evaluation seeds of
#: `evaluate`. Every choice (profile, checkpoint, fine-tune, threshold) is made on "selection",
#: the seed every figure before 2026-12-06 used; "test" is used only to report, never to choose.
EVAL_SEEDS = {"selection": 100, "test": 1000}
#: episodes per task of a test-seed report
TEST_EPISODES = 50


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a success rate (95% for z = 1.96): the rates p for which
    ``successes`` of ``n`` is within z standard errors sqrt(p(1-p)/n). Unlike the normal
    approximation it stays inside [0, 1] and is not empty at 0 or n successes. n = 0 gives (0, 1)."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes of {n} episodes")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def episode_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed derived from ``seed`` and integer keys (task index, episode index)."""
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0])


class ScriptedActor:
    """The suite's (noisy) scripted expert as an actor."""

    def __init__(self, suite_name: str, seed: int = 0, noise: float | None = None):
        self.suite = get_suite(suite_name)
        self.rng = np.random.default_rng(seed)
        self.noise = noise
        self._policy = None

    def reset(self, env) -> None:
        kwargs = {} if self.noise is None else {"noise": self.noise}
        self._policy = self.suite.scripted_policy(env, self.rng, **kwargs)
        self._policy.reset()

    def __call__(self, obs: dict, goal_image: np.ndarray) -> np.ndarray:
        return self._policy.act(obs)

    @property
    def reports_done(self) -> bool:
        """Whether this task's expert can say it has finished (the WidowX experts can)."""
        return hasattr(self._policy, "done")

    @property
    def done(self) -> bool:
        """Whether the expert has finished its skills (False for experts that cannot say)."""
        return bool(getattr(self._policy, "done", False))


class RandomActor:
    """Uniformly random actions within the env's bounds."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self._space = None

    def reset(self, env) -> None:
        self._space = env.action_space

    def __call__(self, obs: dict, goal_image: np.ndarray) -> np.ndarray:
        return self.rng.uniform(self._space.low, self._space.high).astype(np.float32)


class BinaryGripper:
    """Wraps an actor (the scripted or random baseline) so that its action named "gripper"
    is executed fully open or fully closed, split at the middle of its bounds: how a
    `Policy` with ``gripper_mode="binary"`` acts and arm_node's Interbotix backend
    (grasp/release) drives the real gripper. Envs without a "gripper" action are unaffected."""

    def __init__(self, actor: Actor):
        self.actor = actor
        self._index: int | None = None
        self._bounds = (0.0, 1.0)

    def reset(self, env) -> None:
        names = list(getattr(env, "action_names", []))
        self._index = names.index("gripper") if "gripper" in names else None
        if self._index is not None:
            self._bounds = (float(env.action_space.low[self._index]), float(env.action_space.high[self._index]))
        if hasattr(self.actor, "reset"):
            self.actor.reset(env)

    def seed(self, seed: int) -> None:
        if hasattr(self.actor, "seed"):
            self.actor.seed(seed)

    @property
    def reports_done(self) -> bool:
        return bool(getattr(self.actor, "reports_done", False))

    @property
    def done(self) -> bool:
        return bool(getattr(self.actor, "done", False))

    def __call__(self, obs: dict, goal_image: np.ndarray) -> np.ndarray:
        action = np.array(self.actor(obs, goal_image), dtype=np.float32, copy=True)
        if self._index is not None:
            action[self._index] = snap_gripper(float(action[self._index]), *self._bounds)
        return action


#: zero-motion steps a finished expert's demonstration keeps recording (`until_done`)
DONE_HOLD_STEPS = 2


def run_episode(env, actor: Actor, max_steps: int | None = None, record: bool = False,
                seed: int | None = None, options: dict | None = None, until_done: bool = False,
                steps_after_success: int = 0) -> dict[str, Any]:
    """Run one episode; returns images [T+1, H, W, C], actions [T, A], success, steps, the goal
    image and ``step_success`` [T+1] (the env's success flag of each image).

    ``success`` is True if the env reported success at any step (envs end on success).
    With ``until_done`` and an actor whose ``reports_done`` is true (a WidowX scripted expert), the
    episode goes on past success until the expert has finished its skills (e.g. returned the
    arm to rest, as in the goal images), then records DONE_HOLD_STEPS more steps; it still
    ends at ``max_steps``. ``steps_after_success``: the episode goes on for that many steps
    after the first success (the actor may undo it; `success` stays True), still ending at
    ``max_steps``: what a goal-reached detector sees after the goal (crl_ros.learning.calibration).
    With ``record`` the rendered frames are kept under ``"frames"``.
    """
    obs, info = env.reset(seed=seed, options=options)
    goal_image = info["goal_image"]
    if hasattr(actor, "reset"):
        actor.reset(env)
    until_done = until_done and bool(getattr(actor, "reports_done", False))
    max_steps = int(max_steps or env.max_episode_steps)
    low, high = env.action_space.low, env.action_space.high
    images, actions = [obs["image"]], []
    frames = [env.render()] if record else None
    step_success = [bool(info.get("success", False))]
    success = step_success[0]
    steps, held, after = 0, 0, 0
    while (until_done or not success or after < steps_after_success) and steps < max_steps:
        after += int(success)
        action = np.clip(np.asarray(actor(obs, goal_image), dtype=np.float32), low, high)
        obs, _, terminated, truncated, info = env.step(action)
        steps += 1
        images.append(obs["image"])
        actions.append(action)
        if record:
            frames.append(env.render())
        step_success.append(bool(info.get("success", False)))
        success = success or step_success[-1]
        if until_done:
            held += int(actor.done)
            if held > DONE_HOLD_STEPS or truncated:
                break
        elif truncated or (terminated and steps_after_success == 0):
            break
    result = {
        "images": np.stack(images).astype(np.uint8),
        "actions": np.stack(actions).astype(np.float32) if actions else np.zeros((0, low.shape[0]), np.float32),
        "success": success, "steps": steps, "goal_image": goal_image, "step_success": np.array(step_success),
    }
    if record:
        result["frames"] = frames
    return result


def evaluate(suite_name: str, task: str, actor: Actor, episodes: int, seed: int = 0, image_size: int = 48,
             video_path: str | os.PathLike | None = None, max_steps: int | None = None,
             progress: bool = False, shift=None, steps_after_success: int = 0,
             on_episode: Callable[[str, int, dict], None] | None = None) -> dict[str, dict[str, float]]:
    """Success of ``actor`` per task (``task="all"`` runs every task in ``suite.TASKS``).

    Episode ``i`` of a task resets with a seed derived from (``seed``, task index, ``i``), so
    the same seed gives the same starts and goals for every actor; an actor with a ``seed``
    method (a sampling `PolicyActor`) is seeded from the same triple, so its episodes are
    reproducible too. ``shift``: a crl_ros.sim.shifts.ShiftSpec (suites with
    ``supports_shifts``): each episode's shift is drawn from its reset seed, so the starts
    and goals are those of the nominal evaluation. Returns ``{task: {"success_rate",
    "successes", "episodes", "mean_steps", "ci95"}}`` (ci95: the Wilson interval
    [low, high]); with ``video_path`` the first episode of each task is saved as one GIF
    (goal image | camera view). ``steps_after_success`` goes to `run_episode` (``mean_steps``
    then counts those steps too); ``on_episode(task, i, episode)`` is called with every
    `run_episode` result (a goal-reached detector's calibration scores its images).
    """
    suite = get_suite(suite_name)
    tasks = list(suite.TASKS) if task == "all" else [task]
    for t in tasks:
        if t not in suite.TASKS and t not in getattr(suite, "play_tasks", []):
            raise ValueError(f"unknown {suite_name} task {t!r}; choose one of {list(suite.TASKS)} or 'all'")
    env_kwargs = _shift_kwargs(suite_name, shift)
    results: dict[str, dict[str, float]] = {}
    video: list[np.ndarray] = []
    bar = _progress(len(tasks) * episodes, "eval", progress)
    for task_index, t in enumerate(tasks):
        env = suite.make_env(t, image_size=image_size, **env_kwargs)
        successes, steps = 0, []
        for i in range(episodes):
            record = video_path is not None and i == 0
            task_key = suite.TASKS.index(t) if t in suite.TASKS else task_index
            if hasattr(actor, "seed"):
                actor.seed(episode_seed(seed, task_key, i, 1))
            ep = run_episode(env, actor, max_steps=max_steps, record=record, seed=episode_seed(seed, task_key, i),
                             steps_after_success=steps_after_success)
            if on_episode is not None:
                on_episode(t, i, ep)
            successes += int(ep["success"])
            steps.append(ep["steps"])
            if record:
                video.extend(side_by_side(ep["goal_image"], f) for f in ep["frames"])
                camera_x = video[-1].shape[1] - ep["frames"][0].shape[1]
            if bar is not None:
                bar.update(1)
        env.close()
        results[t] = {"success_rate": successes / max(episodes, 1), "successes": successes,
                      "episodes": episodes, "mean_steps": float(np.mean(steps)) if steps else 0.0,
                      "ci95": list(wilson_interval(successes, episodes))}
    if bar is not None:
        bar.close()
    if video_path is not None and video:
        write_gif(video_path, video, labels=[(0, "goal"), (camera_x, "camera")])
    return results


def mean_success(results: dict[str, dict[str, float]]) -> float:
    """Success rate over all episodes of all tasks in an `evaluate` result."""
    episodes = sum(r["episodes"] for r in results.values())
    return sum(r["successes"] for r in results.values()) / max(episodes, 1)


def mean_interval(results: dict[str, dict[str, float]]) -> tuple[float, float]:
    """The Wilson interval of `mean_success`, over all episodes pooled. Tasks that differ in
    difficulty make the pooled count less spread than one binomial, so it is conservative."""
    return wilson_interval(sum(r["successes"] for r in results.values()), sum(r["episodes"] for r in results.values()))


def _shift_kwargs(suite_name: str, shift) -> dict:
    """make_env keyword arguments for ``shift``; a ValueError for a suite without shifts."""
    if not shift:
        return {}
    if not getattr(get_suite(suite_name), "supports_shifts", False):
        raise ValueError(f"the {suite_name} suite has no shifts (they are WidowX camera and scene shifts)")
    return {"shift": shift}


# -- demonstrations -------------------------------------------------------------------------
_WORKER_ENVS: dict[tuple, Any] = {}


def _demo_episode(job: tuple) -> dict[str, Any]:
    suite_name, task, image_size, seed, index, noise, shift = job
    suite = get_suite(suite_name)
    key = (suite_name, task, image_size, shift.describe() if shift else None)
    if key not in _WORKER_ENVS:  # one env per task per process: MuJoCo scenes are slow to build
        _WORKER_ENVS[key] = suite.make_env(task, image_size=image_size, **_shift_kwargs(suite_name, shift))
    env = _WORKER_ENVS[key]
    actor = ScriptedActor(suite_name, seed=episode_seed(seed, index, 1), noise=noise)
    ep = run_episode(env, actor, seed=episode_seed(seed, index, 0), until_done=True)
    ep["task"] = task
    ep.pop("goal_image")
    return ep


def demo_tasks(suite_name: str, task_or_play: str) -> list[str]:
    """The tasks a demo run cycles through: ``"play"`` means the suite's ``play_tasks``,
    ``"all"`` every task of the suite in turn."""
    suite = get_suite(suite_name)
    if task_or_play == "play":
        return list(suite.play_tasks)
    if task_or_play == "all":
        return list(suite.TASKS)
    data_only = list(getattr(suite, "data_tasks", []))
    if task_or_play not in suite.TASKS and task_or_play not in suite.play_tasks and task_or_play not in data_only:
        raise ValueError(f"unknown {suite_name} task {task_or_play!r}; choose one of {list(suite.TASKS)}, all or play"
                         + (f" (or, data only, {data_only})" if data_only else ""))
    return [task_or_play]


def collect_demos(suite_name: str, task_or_play: str, episodes: int, seed: int = 0, image_size: int = 48,
                  workers: int = 1, noise: float | None = None, shift=None) -> Iterator[dict[str, Any]]:
    """Yield scripted demonstration episodes in a fixed order (same seed, same data, any ``workers``).

    ``task_or_play`` is a task name or ``"play"`` (cycles through the suite's play tasks).
    ``shift``: a crl_ros.sim.shifts.ShiftSpec drawn per episode (randomised demonstrations);
    the expert acts on the simulator's state, so its actions are those of the nominal world.
    Each episode: ``images`` [T+1, H, W, C] uint8, ``actions`` [T, A], ``success``, ``task``.
    """
    tasks = demo_tasks(suite_name, task_or_play)
    _shift_kwargs(suite_name, shift)  # a suite without shifts fails here, not in a worker
    shift = shift or None
    jobs = [(suite_name, tasks[i % len(tasks)], image_size, seed, i, noise, shift) for i in range(episodes)]
    if workers <= 1:
        for job in jobs:
            yield _demo_episode(job)
        return
    # spawn, not fork: a parent holding a GL context or threads must not be forked
    with mp.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(_demo_episode, jobs, chunksize=max(1, min(8, episodes // (4 * workers))))


def write_demos(path: str | os.PathLike, suite_name: str, task_or_play: str, episodes: int, seed: int = 0,
                image_size: int = 48, workers: int = 1, noise: float | None = None, overwrite: bool = False,
                progress: bool = False, shift=None) -> dict[str, Any]:
    """Collect scripted demos into a crl_ros dataset file (written atomically by `DatasetWriter`);
    ``shift`` as in `collect_demos` (recorded in the provenance).

    Returns ``{"path", "episodes", "frames", "successes"}``.
    """
    from crl_ros.learning.dataset import DatasetMetadata, DatasetWriter

    suite = get_suite(suite_name)
    tasks = demo_tasks(suite_name, task_or_play)
    probe = suite.make_env(tasks[0], image_size=image_size)
    metadata = DatasetMetadata(
        image_shape=probe.observation_space["image"].shape,
        action_dim=int(probe.action_space.shape[0]),
        action_names=list(probe.action_names),
        action_low=[float(x) for x in probe.action_space.low],
        action_high=[float(x) for x in probe.action_space.high],
        control_rate_hz=float(probe.control_rate_hz),
        provenance={"source": "scripted demos", "env": suite_name, "task": task_or_play, "episodes": episodes,
                    "seed": seed, "noise": noise, "image_size": image_size,
                    **({"shift": shift.describe(goal=False)} if shift else {}),
                    # task demos go on past success until the expert is done (run_episode's until_done)
                    "episode_end": "when the expert is done (WidowX), else at the first success or the step limit"},
    )
    probe.close()
    stats = {"path": str(path), "episodes": episodes, "frames": 0, "successes": 0}
    bar = _progress(episodes, f"demos {suite_name}/{task_or_play}", progress)
    with DatasetWriter(path, metadata, overwrite=overwrite) as writer:
        for ep in collect_demos(suite_name, task_or_play, episodes, seed=seed, image_size=image_size,
                                workers=workers, noise=noise, shift=shift):
            writer.add_episode(ep["images"], ep["actions"])
            stats["frames"] += len(ep["images"])
            stats["successes"] += int(ep["success"])
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return stats


# -- videos ---------------------------------------------------------------------------------
def side_by_side(goal_image: np.ndarray, frame: np.ndarray, gap: int = 2) -> np.ndarray:
    """Goal image (resized to the frame's height by nearest neighbour) | white gap | camera frame."""
    frame = np.asarray(frame, np.uint8)[..., :3]
    goal = np.asarray(goal_image, np.uint8)[..., :3]
    if goal.shape[0] != frame.shape[0]:
        rows = np.arange(frame.shape[0]) * goal.shape[0] // frame.shape[0]
        cols = np.arange(goal.shape[1] * frame.shape[0] // goal.shape[0]) * goal.shape[0] // frame.shape[0]
        goal = goal[rows][:, cols]
    spacer = np.full((frame.shape[0], gap, 3), 255, np.uint8)
    return np.concatenate([goal, spacer, frame], axis=1)


def write_gif(path: str | os.PathLike, frames: list[np.ndarray], fps: float = 5.0, min_height: int = 192,
              labels: Sequence[tuple[int, str]] = ()) -> Path:
    """Write RGB frames as a looping GIF, upscaled (nearest) to at least ``min_height`` px; atomic.
    ``labels``: ``(x, text)`` captions at column x of the frames as given (before upscaling)."""
    from PIL import Image

    from crl_ros.robot.camera import write_labels

    if not frames:
        raise ValueError("no frames to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scale = max(1, int(np.ceil(min_height / frames[0].shape[0])))
    scaled_labels = [(x * scale, text) for x, text in labels]
    images = []
    for f in frames:
        big = np.repeat(np.repeat(np.asarray(f, np.uint8), scale, 0), scale, 1)
        images.append(Image.fromarray(write_labels(big, scaled_labels) if labels else big))
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                   duration=int(1000 / fps), loop=0)
    os.replace(tmp, path)
    return path


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="ep")


class PolicyActor:
    """A trained `Policy` (anything with ``act(image, goal_image, sample=...)``) as an actor.

    ``sample``: True samples N(mean, std^2), False acts with the mean, None (default) does
    what the model's ``eval_sample`` setting says."""

    def __init__(self, policy, sample: bool | None = None):
        self.policy = policy
        self.sample = sample

    def seed(self, seed: int) -> None:
        if hasattr(self.policy, "seed"):
            self.policy.seed(seed)

    def __call__(self, obs: dict, goal_image: np.ndarray) -> np.ndarray:
        return self.policy.act(obs["image"], goal_image, sample=self.sample)
