"""The layers are one-way (see the README's Layout): every module under crl_ros/ is parsed
with ast and its imports, top-level or inside functions, checked against the rules.

- nothing under nodes/, learning/, bags/, sim/, robot/ (nor argtypes.py) imports crl_ros.commands;
- learning/, sim/, robot/, bags/ never import rclpy (or ROS messages) nor crl_ros.nodes.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "crl_ros"
BELOW_COMMANDS = ("nodes", "learning", "bags", "sim", "robot")
WITHOUT_ROS = ("learning", "sim", "robot", "bags")
ROS_MODULES = ("rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "std_srvs", "geometry_msgs",
               "trajectory_msgs", "builtin_interfaces")


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a module of ``package``; relative
    imports resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            # `from crl_ros import commands` imports crl_ros.commands: name each imported name too
            found += [(node.lineno, base)] + [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).parts[:-1])


def violations(folders, forbidden) -> list[str]:
    files = [p for folder in folders for p in sorted((PACKAGE / folder).rglob("*.py"))]
    assert files, folders
    return [f"{p.relative_to(PACKAGE.parent)}:{line} imports {name}"
            for p in files for line, name in imported_modules(p.read_text(), package_of(p))
            if any(name == f or name.startswith(f + ".") for f in forbidden)]


def test_the_import_finder_sees_function_level_relative_and_from_imports():
    code = ("import os\n"
            "def f():\n"
            "    from crl_ros.commands import positive_float\n"
            "    from ..commands import demo\n"
            "    from crl_ros import commands\n"
            "    import rclpy.node\n")
    names = [name for _, name in imported_modules(code, "crl_ros.nodes")]
    assert "crl_ros.commands" in names and "crl_ros.commands.demo" in names and "rclpy.node" in names
    assert names.count("crl_ros.commands") == 3 and "os" in names


def test_nothing_below_the_commands_imports_them():
    assert not violations(BELOW_COMMANDS, ["crl_ros.commands"])
    argtypes = PACKAGE / "argtypes.py"
    assert not [name for _, name in imported_modules(argtypes.read_text(), "crl_ros") if name.startswith("crl_ros")]


@pytest.mark.parametrize("forbidden", [ROS_MODULES, ["crl_ros.nodes", "crl_ros.commands"]],
                         ids=["ros", "nodes-and-commands"])
def test_learning_sim_robot_and_bags_use_no_ros_and_no_nodes(forbidden):
    assert not violations(WITHOUT_ROS, forbidden)


#: the issue-26 rule: a function a reader can see at once; a longer one says why in a comment
#: starting "# long:" in its body
MAX_FUNCTION_LINES = 80


def test_no_function_is_longer_than_a_screen_without_a_reason():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                body = lines[node.lineno - 1:node.end_lineno]
                if length > MAX_FUNCTION_LINES and not any(line.strip().startswith("# long:") for line in body):
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, "functions over a screen without a '# long:' reason:\n" + "\n".join(long)
