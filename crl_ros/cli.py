"""The `crl` command. Each subcommand lives in crl_ros/commands/<name>.py and exposes
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; heavy imports happen in run().
Every --help lists each option's default (HelpFormatter); a parser a command adds below
its own (`crl analyze interpolate`) takes ``formatter_class=parser.formatter_class``."""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> module in crl_ros.commands
COMMANDS = {
    "train": "train",
    "demos": "demos",
    "eval": "evaluate",
    "calibrate": "calibrate",
    "convert": "convert",
    "record": "record",
    "teleop": "teleop",
    "reach-goal": "reach_goal",
    "demo": "demo",
    "analyze": "analyze",
    "bag": "bag",
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, except where there is none to show (None,
    a flag's False, an empty list) or the help already says what it is."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text, default = action.help or "", action.default
        nothing = default is None or default is False or default is argparse.SUPPRESS or default == []
        if nothing or "default" in help_text:
            return help_text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crl", description="Stable Contrastive RL for goal-image reaching (crl_ros)",
                                     formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f"crl_ros.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"crl_ros.commands.{module_name}":
                continue  # not built yet
            raise
        p = sub.add_parser(name, help=module.HELP, description=module.HELP, formatter_class=HelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
