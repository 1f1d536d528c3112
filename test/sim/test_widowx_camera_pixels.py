"""Sim-trained models see in deployment the pixels they were trained on: the env's observation
equals (up to resampling) what camera_node makes of sim_node's full camera frame."""
from pathlib import Path

import numpy as np
import yaml

from crl_ros.robot.camera import preprocess_image
from crl_ros.sim.widowx import make_env

CONFIG = Path(__file__).resolve().parents[2] / "config"


def _camera_node_settings():
    params = yaml.safe_load((CONFIG / "camera_node.yaml").read_text())["/**"]["ros__parameters"]
    sim = yaml.safe_load((CONFIG / "sim_node.yaml").read_text())["/**"]["ros__parameters"]
    return params["crop"], params["size"], sim


def test_env_observation_matches_the_ros_camera_pipeline():
    crop, size, _ = _camera_node_settings()
    env = make_env("push_block", image_size=size[0])
    obs, info = env.reset(seed=5)
    full_frame = env.unwrapped.sim.render(640, 480)
    deployed = preprocess_image(full_frame, crop=crop, size=size).astype(float)
    assert np.abs(obs["image"].astype(float) - deployed).mean() < 1.0
    # the aliased direct render is what this guards against
    direct = env.unwrapped.sim.render(size[1], size[0]).astype(float)
    assert np.abs(direct - deployed).mean() > 2.0
    env.close()
