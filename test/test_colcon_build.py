"""The package builds with `colcon build` in a ROS 2 workspace and installs its share/ files."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COLCON = Path(sys.executable).with_name("colcon")


@pytest.fixture(scope="module")
def install_prefix(tmp_path_factory):
    if not COLCON.exists():
        pytest.skip("colcon is not installed in this environment")
    ws = tmp_path_factory.mktemp("ws")
    src = ws / "src" / "crl_ros"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "runs", "data", "build", "install", "log", "__pycache__", "*.egg-info"))
    result = subprocess.run([str(COLCON), "build", "--base-paths", "src"], cwd=ws,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return ws / "install" / "crl_ros"


def test_share_files_are_installed(install_prefix):
    share = install_prefix / "share" / "crl_ros"
    assert (install_prefix / "share/ament_index/resource_index/packages/crl_ros").exists()
    assert (share / "package.xml").read_text() == (REPO / "package.xml").read_text()
    for folder in ("launch", "config", "models"):
        expected = sorted(p.name for p in (REPO / folder).glob("*") if p.is_file() and p.name != ".gitkeep")
        installed = sorted(p.name for p in (share / folder).glob("*")) if (share / folder).exists() else []
        assert set(expected) <= set(installed), f"{folder}: {expected} not all in {installed}"


def test_every_node_has_an_executable_for_ros2_run(install_prefix):
    import re
    nodes = re.findall(r'"(\w+_node)"', (REPO / "setup.py").read_text())
    assert len(nodes) == 8
    for name in nodes + ["crl"]:
        assert (install_prefix / "lib" / "crl_ros" / name).exists(), name


def test_the_installed_executables_run_on_a_python_that_has_torch_and_mujoco(install_prefix):
    """`colcon build` writes each executable's shebang for the Python that ran colcon. Built
    with the system colcon on a robot computer that would be /usr/bin/python3, which has no
    torch or mujoco: the README's robot-computer install builds from the project's venv."""
    script = install_prefix / "lib" / "crl_ros" / "policy_node"
    first = script.read_text().splitlines()[0]
    assert first.startswith("#!"), first
    interpreter = first[2:].strip().split()[0]
    result = subprocess.run([interpreter, "-c", "import torch, mujoco, rclpy, crl_ros.nodes.policy_node"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (f"{script} runs {interpreter}, which cannot import what the nodes need:\n"
                                    f"{result.stderr[-2000:]}")
