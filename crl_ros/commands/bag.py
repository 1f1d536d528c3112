"""`crl bag VERB ...`: work on recorded rosbag2 bags themselves (no dataset involved).

- ``repair IN OUT``: copy every complete message of an .mcap recording that was killed
  hard (no summary/footer), cut short or damaged into a new, indexed bag OUT (with
  metadata.yaml) that any rosbag2 reader opens; says what was recovered and lost. IN is
  only read.
"""
from __future__ import annotations

import argparse
import sys

HELP = "work on recorded bags: repair (a recording killed hard -> an indexed copy)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = sub.add_parser("repair", help="write an indexed copy of a killed, cut or damaged .mcap bag",
                       description="Read IN record by record (no summary or metadata.yaml needed) and write every "
                       "complete message to the new bag OUT. IN is never modified.",
                       formatter_class=parser.formatter_class)
    p.add_argument("input", metavar="IN", help="the bag folder (with or without metadata.yaml) or its .mcap file")
    p.add_argument("output", metavar="OUT", help="the repaired bag folder to create (must not exist)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    return _repair(args)  # the only verb so far


def _repair(args: argparse.Namespace) -> int:
    from rosbags.rosbag2 import WriterError

    from crl_ros.bags.recover import RecoveryError, repair_bag

    try:
        scan, written = repair_bag(args.input, args.output, progress=not args.quiet)
    except (RecoveryError, WriterError, OSError) as exc:
        print(f"crl bag repair: error: {exc}", file=sys.stderr)
        print("crl bag repair: no bag was written", file=sys.stderr)
        return 1
    if scan.intact:
        print(f"{args.input} was complete; wrote an indexed copy {args.output} ({written} messages)")
    else:
        print(f"crl bag repair: warning: {scan.summary()}", file=sys.stderr)
        print(f"wrote {args.output}: {written} messages, indexed, with metadata.yaml")
    return 0
