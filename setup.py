"""ament_python package setup: works with `colcon build` and with pip."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "crl_ros"

# Every node is also a console script, so `ros2 run crl_ros <node>` finds it.
NODES = ["camera_node", "goal_node", "policy_node", "arm_node", "sim_node",
         "recorder_node", "trainer_node", "teleop_node"]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "bench", "bench.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/models", glob("models/*")),
    ],
    package_data={PACKAGE: ["sim/assets/*"]},
    include_package_data=True,
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="crl_ros developers",
    maintainer_email="crl-ros@example.com",
    description="Stable Contrastive RL for goal-image reaching on the WidowX 250 (ROS 2).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "crl = crl_ros.cli:main",
            *[f"{n} = crl_ros.nodes.{n}:main" for n in NODES],
        ],
    },
)
