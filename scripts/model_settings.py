#!/usr/bin/env python3
"""Show or change how a trained model acts by default, without retraining it.

    python scripts/model_settings.py models/widowx_stable_crl.pt                    # show
    python scripts/model_settings.py models/widowx_stable_crl.pt eval_gripper=binary # change in place
    python scripts/model_settings.py old.pt eval_sample=true --out new.pt

Only the acting settings (``eval_sample``: sampled or mean actions; ``eval_gripper``:
continuous or binary gripper) can change; the weights and everything the model was
trained with stay as they are (crl_ros.learning.checkpoint.set_acting_settings).
"""
from __future__ import annotations

import argparse
import sys

import yaml


def main(argv=None) -> int:
    from crl_ros.learning.checkpoint import ACTING_KEYS, CheckpointError, load_checkpoint, set_acting_settings
    from crl_ros.learning.policy import Policy

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("settings", nargs="*", metavar="KEY=VALUE", help=f"one of {', '.join(ACTING_KEYS)}")
    p.add_argument("--out", help="write the changed model here (default: in place)")
    args = p.parse_args(argv)
    try:
        if args.settings:
            pairs = [s.partition("=") for s in args.settings]
            if any(not sep for _, sep, _ in pairs):
                p.error("settings are KEY=VALUE")
            path = set_acting_settings(args.model, {k.strip(): yaml.safe_load(v) for k, _, v in pairs}, args.out)
            print(f"wrote {path}")
        else:
            path = load_checkpoint(args.model).path
        policy = Policy.load(path, device="cpu")
    except CheckpointError as exc:
        print(f"model_settings: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: {'sampled' if policy.samples_by_default else 'mean'} actions, {policy.gripper_mode} gripper")
    return 0


if __name__ == "__main__":
    sys.exit(main())
