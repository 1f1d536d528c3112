"""argparse types shared by the `crl` subcommands (crl_ros/commands/) and the one-process
bringups beside the nodes (crl_ros/nodes/*_bringup.py). They live here, below both, so the
layers stay one-way: nodes/ never imports commands/. Standard library only."""
from __future__ import annotations

import argparse


def positive_float(text: str) -> float:
    """argparse type: a number > 0 (a rate, a duration)."""
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a count, an image side)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _number(text: str, kind):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a{'n integer' if kind is int else ' number'}: {text!r}") from None
    if kind is float and value != value:  # NaN
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    return value
