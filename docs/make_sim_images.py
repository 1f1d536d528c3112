"""Regenerate the README pictures of the simulated WidowX: the scene, and each task's goal image.

    python docs/make_sim_images.py   # writes docs/images/widowx_scene.png and task_goals.png
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from crl_ros.sim import widowx
from crl_ros.sim.widowx_sim import WidowXSim

IMAGES = Path(__file__).resolve().parent / "images"
TILE = 128
LABEL_HEIGHT = 28


def scene_picture(size: int = 256) -> Image.Image:
    """The scene camera beside the policy camera, at the start of the drawer pick-and-place task."""
    sim = WidowXSim("pick_drawer_place_tray_close")
    sim.reset(seed=0)
    return Image.fromarray(np.concatenate(
        [sim.render(size, size, camera="scene"), np.full((size, 4, 3), 255, np.uint8),
         sim.render(size, size, camera="overhead")], axis=1))


def task_goals_picture(seed: int = 0) -> Image.Image:
    """One labelled tile per task: its goal image from the policy camera (seed ``seed``)."""
    sim = WidowXSim()
    sheet = Image.new("RGB", (len(widowx.TASKS) * (TILE + 4) - 4, TILE + LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(sheet)
    for i, task in enumerate(widowx.TASKS):
        sim.reset(task, seed=seed)
        x = i * (TILE + 4)
        sheet.paste(Image.fromarray(sim.goal_image(TILE, TILE)), (x, 0))
        words = task.split("_")
        lines = [" ".join(words[:2]), " ".join(words[2:])] if len(words) > 2 else [" ".join(words)]
        for row, line in enumerate(lines):
            draw.text((x + 2, TILE + 2 + 12 * row), line, fill="black")
    return sheet


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    scene_picture().save(IMAGES / "widowx_scene.png")
    task_goals_picture().save(IMAGES / "task_goals.png")
    print(f"wrote {IMAGES / 'widowx_scene.png'} and {IMAGES / 'task_goals.png'}")


if __name__ == "__main__":
    main()
