"""Launch files: a static check that everything they name exists (runs everywhere), and a
launch_pytest bringup that runs only where ROS 2's launch is installed."""
import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
SETUP_NODES = set(re.findall(r'"(\w+_node)"', (REPO / "setup.py").read_text()))
# nodes of other ROS packages a launch file may start: (package, executable)
EXTERNAL_NODES = {("joy", "joy_node")}


def _string(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _keyword(call, name):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _calls(tree, func_name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == func_name]


def _node_parameter_names(executable):
    import importlib
    module = importlib.import_module(f"crl_ros.nodes.{executable}")
    return {name for name, _, _ in module.PARAMETERS}


def test_the_three_launch_files_exist():
    assert {p.name for p in LAUNCH_FILES} == {"reach_goal.launch.py", "record_demos.launch.py", "train.launch.py"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_names_only_existing_nodes_configs_and_parameters(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    module_constants = {t.id: _string(n.value) for n in tree.body if isinstance(n, ast.Assign)
                        for t in n.targets if isinstance(t, ast.Name)}
    nodes = _calls(tree, "Node")
    assert nodes, "no Node actions"
    for call in nodes:
        package = _keyword(call, "package")
        package = _string(package) or module_constants.get(getattr(package, "id", None))
        executable = _string(_keyword(call, "executable"))
        if package != "crl_ros":
            assert (package, executable) in EXTERNAL_NODES, f"{path.name}: unexpected node {package}/{executable}"
            continue
        assert executable in SETUP_NODES, f"{path.name}: executable {executable!r} is not a console script in setup.py"
        declared = _node_parameter_names(executable)
        params = _keyword(call, "parameters")
        configs = [_string(c.args[0]) for c in _calls(params, "_config")]
        assert configs == [f"{executable}.yaml"], f"{executable} should load config/{executable}.yaml, got {configs}"
        for d in (n for n in ast.walk(params) if isinstance(n, ast.Dict)):
            keys = {_string(k) for k in d.keys}
            assert keys <= declared, f"{path.name}: {executable} has no parameters {keys - declared}"
    for call in _calls(tree, "_config"):
        assert (REPO / "config" / _string(call.args[0])).is_file(), _string(call.args[0])
    # every LaunchConfiguration refers to a declared argument
    declared_args = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "ARGUMENTS" for t in n.targets):
            declared_args = {_string(el.elts[0]) for el in n.value.elts}
    used = {_string(c.args[0]) for c in _calls(tree, "LaunchConfiguration") if c.args and _string(c.args[0])}
    used |= {_string(c.args[0]) for c in _calls(tree, "_string")}
    assert used <= declared_args, f"{path.name}: undeclared launch arguments {used - declared_args}"


def test_reach_goal_launch_has_the_documented_arguments():
    text = (REPO / "launch" / "reach_goal.launch.py").read_text()
    for arg in ("use_sim", "robot_model", "model_path", "camera_source", "namespace"):
        assert f'("{arg}"' in text


def test_record_demos_launch_starts_the_chosen_teleop():
    tree = ast.parse((REPO / "launch" / "record_demos.launch.py").read_text())
    arguments = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "ARGUMENTS")
    defaults = {_string(t.elts[0]): _string(t.elts[1]) for t in arguments.elts}
    assert defaults["teleop"] == "none" and {"use_sim", "namespace", "output_dir", "topics"} <= set(defaults)
    choices = ast.literal_eval(next(n.value for n in tree.body if isinstance(n, ast.Assign)
                                    and n.targets[0].id == "CHOICES"))
    assert choices["teleop"] == ["joy", "keyboard", "none"]
    from crl_ros.robot.teleop import GAMEPADS
    from crl_ros.nodes.common import load_params_file
    assert choices["gamepad"] == list(GAMEPADS)
    assert defaults["gamepad"] == load_params_file(REPO / "config" / "teleop_node.yaml", "teleop_node")["gamepad"]
    conditioned = {_string(_keyword(c, "executable")): ast.unparse(_keyword(c, "condition"))
                   for c in _calls(tree, "Node") if _keyword(c, "condition") is not None}
    assert conditioned["joy_node"] == conditioned["teleop_node"] == "_teleop_is('joy')"


@pytest.mark.parametrize("config", sorted((REPO / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_config_files_set_only_declared_parameters(config):
    from crl_ros.nodes.common import load_params_file
    node = config.stem
    assert node in SETUP_NODES, f"config/{config.name} belongs to no node"
    params = load_params_file(config, node)
    assert params, f"{config.name} sets no parameters"
    unknown = set(params) - _node_parameter_names(node)
    assert not unknown, f"{config.name}: {unknown} are not parameters of {node}"


def _launch_test_unavailable() -> str | None:
    """Why the launch bringup cannot run here, or None. Without crl_ros in the ament index
    FindPackageShare fails inside the launch service and the test would wait to its timeout."""
    try:
        import launch_pytest  # noqa: F401
    except ImportError:
        return "launch_pytest is not installed (ROS 2 launch); the static checks above still ran"
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return "ament_index_python is not installed"
    try:
        get_package_share_directory("crl_ros")
    except (PackageNotFoundError, ValueError, LookupError, OSError):
        return ("crl_ros is not in the ament index (AMENT_PREFIX_PATH): build it with colcon and source "
                "install/setup.bash to run the launch test")
    return None


LAUNCH_UNAVAILABLE = _launch_test_unavailable()

if LAUNCH_UNAVAILABLE:
    def test_reach_goal_launch_brings_up_the_sim_graph():
        pytest.skip(LAUNCH_UNAVAILABLE)
else:
    import launch_pytest

    @launch_pytest.fixture
    def reach_goal_sim():
        from launch import LaunchDescription
        from launch.actions import IncludeLaunchDescription
        from launch.launch_description_sources import PythonLaunchDescriptionSource
        from launch_pytest.actions import ReadyToTest
        source = PythonLaunchDescriptionSource(str(REPO / "launch" / "reach_goal.launch.py"))
        return LaunchDescription([
            IncludeLaunchDescription(source, launch_arguments={"use_sim": "true"}.items()),
            ReadyToTest(),
        ])

    @pytest.mark.timeout(180)
    @pytest.mark.launch(fixture=reach_goal_sim)
    def test_reach_goal_launch_brings_up_the_sim_graph():
        """sim, camera, goal and arm nodes come up and the camera turns sim images into observations."""
        import time
        import rclpy
        from sensor_msgs.msg import Image
        from crl_ros.nodes import common
        rclpy.init()
        node = rclpy.create_node("launch_test_probe")
        try:
            seen = []
            node.create_subscription(Image, "observation", seen.append, common.sensor_qos())
            deadline = time.monotonic() + 60
            expected = {"sim_node", "camera_node", "goal_node", "arm_node"}
            while time.monotonic() < deadline and not (expected <= set(node.get_node_names()) and seen):
                rclpy.spin_once(node, timeout_sec=0.1)
            assert expected <= set(node.get_node_names())
            assert seen and (seen[-1].width, seen[-1].height) == (48, 48)
        finally:
            node.destroy_node()
            rclpy.shutdown()


def test_the_launch_test_skips_rather_than_hangs_without_crl_ros_in_the_ament_index(monkeypatch, tmp_path):
    import sys
    import types
    pytest.importorskip("ament_index_python")
    monkeypatch.setitem(sys.modules, "launch_pytest", types.ModuleType("launch_pytest"))
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))  # an index without crl_ros
    assert "not in the ament index" in _launch_test_unavailable()


def test_the_readme_lists_every_launch_argument():
    """README.md's table is generated from the launch files' ARGUMENTS: regenerate it with
    `python scripts/launch_arguments.py --write` after changing an argument."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("launch_arguments", REPO / "scripts" / "launch_arguments.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.readme_block((REPO / "README.md").read_text()) == module.table()
    names = {name for path in LAUNCH_FILES for name, _, _ in module.arguments(path)}
    assert {"rate_hz", "max_observation_age_ms", "camera_transport", "storage", "settings"} <= names


def test_policy_rate_and_observation_age_launch_defaults_match_the_config():
    from crl_ros.nodes.common import load_params_file
    import importlib.util
    spec = importlib.util.spec_from_file_location("launch_arguments", REPO / "scripts" / "launch_arguments.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    defaults = {name: default for name, default, _ in module.arguments(REPO / "launch" / "reach_goal.launch.py")}
    config = load_params_file(REPO / "config" / "policy_node.yaml", "policy_node")
    for name in ("rate_hz", "max_observation_age_ms"):
        assert float(defaults[name]) == float(config[name])
