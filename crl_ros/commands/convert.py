"""`crl convert BAG... --out DATASET.h5`: rosbag2 recordings (one episode per bag) -> dataset."""
from __future__ import annotations

import os
import sys

HELP = "convert rosbag2 recordings (one episode per bag) into a training dataset"


def add_arguments(parser) -> None:
    from crl_ros.bags.convert import DEFAULT_MAX_GAP_S, GAP_POLICIES
    from crl_ros.argtypes import positive_float, positive_int

    parser.add_argument("bags", nargs="+", help="bag directories or .mcap/.db3 files, one episode each")
    parser.add_argument("--out", required=True, help="dataset file to write (.h5)")
    parser.add_argument("--image-topic", help="camera topic (Image or CompressedImage); default: the bag's one "
                        "colour camera (depth, infrared, 16-bit and undecodable topics are never picked; a raw topic "
                        "is preferred to its /compressed twin; with several cameras, the one named image_raw or "
                        "observation, else an error listing them)")
    parser.add_argument("--action-topic", help="action topic (Float32MultiArray); default: 'action' when "
                        "present, else actions are derived from joint_states through FK")
    parser.add_argument("--joint-topic", help="joint state topic (default: joint_states)")
    parser.add_argument("--rate", type=positive_float, default=5.0, help="control rate in Hz")
    parser.add_argument("--crop", type=int, nargs=4, metavar=("X0", "Y0", "X1", "Y1"),
                        help="crop of the camera frame in pixels, 0 0 0 0 for none (default: camera_node's, "
                        "config/camera_node.yaml; not applied to frames already at or below --size, such as "
                        "an observation topic)")
    parser.add_argument("--size", type=positive_int, nargs=2, metavar=("H", "W"),
                        help="dataset image HEIGHT WIDTH, in that order like every crl image size "
                        "(default: camera_node's, config/camera_node.yaml)")
    parser.add_argument("--max-gap", type=positive_float, default=DEFAULT_MAX_GAP_S,
                        help="a silence longer than this (seconds) in the camera, joint or action topic is a gap")
    parser.add_argument("--gap-policy", choices=GAP_POLICIES, default="split",
                        help="split: cut the episode at each gap, dropping the steps inside it; error: refuse the "
                        "bag")
    parser.add_argument("--min-fragment", type=float, default=1.0, metavar="SECONDS",
                        help="with --gap-policy split, drop pieces shorter than this")
    parser.add_argument("--no-gripper", action="store_true",
                        help="the recording has no gripper joints: convert with the gripper column fixed at 1.0 "
                        "(open) instead of stopping")
    parser.add_argument("--exact-jpeg", action="store_true",
                        help="decode JPEG frames at full size (default: libjpeg's scaled decoding where the dataset "
                        "image is small, several times faster, within JPEG error)")
    parser.add_argument("--no-proprio", action="store_true", help="do not store joint positions")
    parser.add_argument("--workers", type=positive_int, default=len(os.sched_getaffinity(0)),
                        help="processes converting at once: bags, or time slices of a long indexed .mcap (the "
                        "dataset is the same for any number; default: the cores this process may use)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from crl_ros.bags.convert import ConvertOptions, convert_bags
    from crl_ros.bags.reader import BagError
    from crl_ros.learning.dataset import DatasetError, load
    from crl_ros.nodes.common import crop_from_param, node_defaults

    camera_cfg = node_defaults("camera_node")
    crop = crop_from_param(args.crop if args.crop else camera_cfg.get("crop", [0, 0, 0, 0]))
    size = args.size if args.size else camera_cfg.get("size", [48, 48])
    try:
        options = ConvertOptions(image_topic=args.image_topic, action_topic=args.action_topic,
                                 joint_topic=args.joint_topic, rate_hz=args.rate, crop=crop, size=tuple(size),
                                 crop_is_default=not args.crop, max_gap_s=args.max_gap,
                                 gap_policy=args.gap_policy, min_fragment_s=args.min_fragment,
                                 no_gripper=args.no_gripper, fast_jpeg=not args.exact_jpeg,
                                 store_proprio=not args.no_proprio, workers=args.workers, progress=not args.quiet,
                                 overwrite=args.overwrite)
        out = convert_bags(args.bags, args.out, options)
    except (BagError, DatasetError, FileExistsError, ValueError) as exc:
        print(f"crl convert: error: {exc}", file=sys.stderr)
        print("crl convert: no dataset was written", file=sys.stderr)
        return 1
    data = load(out)
    print(f"wrote {out}: {data.num_episodes} episodes, {data.num_frames} frames, images {data.metadata.image_shape}, "
          f"crop {data.metadata.provenance.get('crop')}")
    return 0
