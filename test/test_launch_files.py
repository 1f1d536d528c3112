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


def _ros2_launch():
    """The `ros2 launch` command line, or pytest.skip: these tests run it as a user does."""
    import importlib.util
    import shutil
    import sys
    if LAUNCH_UNAVAILABLE:
        pytest.skip(LAUNCH_UNAVAILABLE)
    ros2 = shutil.which("ros2") or str(Path(sys.executable).with_name("ros2"))
    if importlib.util.find_spec("ros2launch") is None or not Path(ros2).exists():
        pytest.skip("ros2launch (the `ros2 launch` command) is not installed")
    if not Path("/proc/self/environ").exists():
        pytest.skip("finding the launched processes reads /proc (Linux)")
    return [ros2, "launch", "crl_ros"]


def _launch_env(marker: str) -> dict:
    """The environment of a `ros2 launch` under test: a private ROS domain (above the 1-100 the
    node tests use) and a marker every process it starts inherits, to find them afterwards."""
    import os
    return dict(os.environ, CRL_TEST_LAUNCH=marker, ROS_DOMAIN_ID=str(101 + os.getpid() % 100),
                ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")


def _processes_with(marker: str) -> dict[int, str]:
    """pid -> command line of every live process (not a zombie) whose environment holds the marker."""
    import os
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if f"CRL_TEST_LAUNCH={marker}".encode() in environ and state != "Z":
                found[int(pid)] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def _left_behind(marker: str, within: float) -> dict[int, str]:
    """The marked processes still alive after ``within`` seconds (sooner when none is); they are
    killed, so a failing test leaves nothing running either."""
    import os
    import signal
    import time
    end = time.monotonic() + within
    while (left := _processes_with(marker)) and time.monotonic() < end:
        time.sleep(0.2)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def test_a_launch_that_needs_a_missing_package_starts_nothing_and_names_the_alternative(tmp_path):
    """record_demos.launch.py teleop:=joy without the joy package: one clear error naming the
    package and teleop:=keyboard, exit 1, and no node started (launch_ros's own "package 'joy'
    not found" came after sim_node, arm_node and recorder_node had started, and they kept
    running after `ros2 launch` had exited)."""
    import subprocess
    import uuid
    command = _ros2_launch()
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    try:
        get_package_prefix("joy")
        pytest.skip("the joy package is installed here; this test needs a machine without it")
    except PackageNotFoundError:
        pass
    marker = uuid.uuid4().hex
    result = subprocess.run(command + ["record_demos.launch.py", "teleop:=joy", f"output_dir:={tmp_path / 'bags'}"],
                            env=_launch_env(marker), capture_output=True, text=True, timeout=120)
    log = result.stdout + result.stderr
    left = _left_behind(marker, within=2.0)
    assert result.returncode == 1, log
    assert "the ROS package 'joy' is not installed" in log and "teleop:=keyboard" in log, log
    assert "process started" not in log and not left, (left, log)


def test_sigterm_to_ros2_launch_stops_every_node(tmp_path):
    """What systemd, `docker stop` and `kill` send. Upstream launch exits on SIGTERM without
    stopping its nodes (ros2/launch#666); each node of these launch files gets SIGTERM from the
    kernel when its launch exits (launch_support.stops_with_launch) and stops cleanly."""
    import signal
    import subprocess
    import time
    import uuid
    command = _ros2_launch()
    from crl_ros.nodes.launch_support import SETPRIV
    if SETPRIV is None:
        pytest.skip("setpriv (util-linux) is not installed: nodes are not tied to their launch")
    marker = uuid.uuid4().hex
    log_path = tmp_path / "launch.log"
    with open(log_path, "w") as log:
        launch = subprocess.Popen(command + ["record_demos.launch.py", "use_sim:=false", "topics:=['arm_status']",
                                             f"output_dir:={tmp_path / 'bags'}"],
                                  env=_launch_env(marker), stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        # recorder_node has found arm_node's arm_status: both nodes are up
        end = time.monotonic() + 120
        while "recording /arm_status" not in log_path.read_text() and launch.poll() is None \
                and time.monotonic() < end:
            time.sleep(0.5)
        nodes = {pid: cmd for pid, cmd in _processes_with(marker).items() if pid != launch.pid}
        assert len(nodes) == 2 and "recording /arm_status" in log_path.read_text(), (nodes, log_path.read_text())
        launch.send_signal(signal.SIGTERM)
        launch.wait(60)
    finally:
        if launch.poll() is None:
            launch.kill()
        left = _left_behind(marker, within=30.0)
    assert not left, f"left running after SIGTERM to ros2 launch: {left}\n{log_path.read_text()}"


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
