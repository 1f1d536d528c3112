"""`crl convert --workers N`: bags, and time slices of one long indexed .mcap, read in parallel
processes give the very episodes, dataset bytes and errors of one process; input errors
come before any progress bar."""
import os
import sys
import types

import numpy as np
import pytest
from test_bags import CAM_PERIOD, SEC, T0, write_episode

from crl_ros.bags.convert import ConvertOptions, convert_bag_pieces, convert_bags, plan_bag
from crl_ros.bags.reader import BagError
from crl_ros.bags.writer import BagWriter, make_action, make_compressed_image, make_image, make_joint_state
from crl_ros.cli import build_parser, main
from crl_ros.learning import dataset as ds
from crl_ros.robot import actions, camera, kinematics

OPTS = dict(crop=None, size=(8, 8), progress=False)
ARM = kinematics.JOINT_NAMES
FINGERS = ["left_finger", "right_finger"]


def write_irregular(path, seconds=4.0, seed=0, with_actions=True, compressed=False, split_joints=False,
                    storage_compression="none", camera_holes=((1.4, 1.9),), bad_action_at=None):
    """A recording as a loaded robot computer makes it: camera and joint periods that jitter,
    frames missing in ``camera_holes`` (seconds), joint_states split into arm and gripper
    messages (``split_joints``), actions a little early or late."""
    rng = np.random.default_rng(seed)
    msgs = []
    t, i = T0, 0
    while t < T0 + seconds * SEC:
        s = (t - T0) / SEC
        if not any(a <= s < b for a, b in camera_holes):
            img = np.full((24, 32, 3), i % 256, np.uint8)
            img[0, 0, 1] = i // 256
            if compressed:
                msgs.append((t, "image_raw/compressed", make_compressed_image(camera.encode_compressed(img, "png"), t,
                                                                              "png")))
            else:
                msgs.append((t, "image_raw", make_image(img, t)))
        t += int(CAM_PERIOD * rng.uniform(0.6, 1.4))
        i += 1
    t = T0 + int(rng.integers(0, 5 * 10**6))
    while t < T0 + seconds * SEC:
        s = (t - T0) / SEC
        q = [0.3 * s, -0.2 + 0.1 * s, 0.3 - 0.1 * s, 0.05 * s, 0.4 + 0.02 * np.sin(3 * s), -0.1 * s]
        finger = 0.015 + 0.02 * (0.5 + 0.5 * np.sin(s))
        if split_joints:
            msgs.append((t - int(rng.integers(0, 3 * 10**6)), "joint_states",
                         make_joint_state(FINGERS, [finger, -finger], t)))
            msgs.append((t, "joint_states", make_joint_state(ARM, q, t)))
        else:
            msgs.append((t, "joint_states", make_joint_state(kinematics.JOINT_STATE_NAMES,
                                                             [*q, 0.0, finger, -finger], t)))
        t += int(10**7 * rng.uniform(0.5, 1.5))
    if with_actions:
        for k in range(int(seconds * 5)):
            t = T0 + 10**8 + k * SEC // 5 + int(rng.integers(-2 * 10**7, 2 * 10**7))
            value = float("nan") if bad_action_at is not None and k == bad_action_at else 0.001 * k
            msgs.append((t, "action", make_action([value, 0, 0, 0, 0, 0, 1.0], actions.ACTION_NAMES)))
    with BagWriter(path, "mcap", storage_compression) as w:
        for t, topic, msg in sorted(msgs, key=lambda m: m[0]):
            w.write(topic, t, msg)
    return path


def write_on_the_slice_starts(path, seconds=4.0, action_lead_ns=None):
    """Slices start at a camera frame; here every frame (5 Hz) has a step at its very time
    (an action recorded just before it at that time, ``action_lead_ns`` 0, or the last
    message before it, 1; None: FK steps), and an arm joint state too, whose finger
    message came 5 ms earlier: what a slice start must get right. Nothing is recorded from
    1.7 s to 2 s, where two slices meet: the steps in that silence belong to the first."""
    msgs = []
    for j in range(int(seconds * 100)):
        t = T0 + j * 10**7
        s = j / 100
        q = [0.3 * np.sin(2 * s), -0.2 + 0.1 * np.cos(3 * s), 0.3, 0.05 * s * s, 0.4, -0.1 * s]
        finger = 0.015 + 0.02 * (0.5 + 0.5 * np.sin(4 * s))
        msgs.append((t - 5 * 10**6, "joint_states", make_joint_state(FINGERS, [finger, -finger], t)))
        msgs.append((t, "joint_states", make_joint_state(ARM, q, t)))
        if j % 20 == 0:
            if action_lead_ns is not None:
                action = make_action([0.001 * j, 0, 0, 0, 0, 0, 1.0], actions.ACTION_NAMES)
                msgs.append((t - action_lead_ns, "action", action))
            msgs.append((t, "image_raw", make_image(np.full((24, 32, 3), j // 20, np.uint8), t)))
    with BagWriter(path, "mcap") as w:
        for t, topic, msg in sorted(msgs, key=lambda m: m[0]):  # stable: at one time, in the order above
            if not T0 + 17 * SEC // 10 <= t < T0 + 2 * SEC:
                w.write(topic, t, msg)
    return path


def assert_same_episodes(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        for name, value in vars(e).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(getattr(g, name), value, err_msg=name)
                assert getattr(g, name).dtype == value.dtype
            else:
                assert getattr(g, name) == value, name


CASES = {
    "action topic": dict(),
    "fk from joints": dict(with_actions=False),
    "split joint publishers": dict(split_joints=True, with_actions=False),
    "compressed frames, zstd chunks": dict(compressed=True, storage_compression="zstd"),
    "no holes": dict(camera_holes=()),
}


@pytest.mark.parametrize("action_lead_ns", [0, 1, None])
def test_a_slice_start_on_a_step_action_and_joint_state(tmp_path, action_lead_ns):
    bag = write_on_the_slice_starts(tmp_path / "ep", action_lead_ns=action_lead_ns)
    expected = convert_bag_pieces(bag, ConvertOptions(**OPTS))
    # FK: 20 steps, one in the silence; actions: 0 comes before frame 0, 9 (and 10 with a lead) in the silence
    assert len(expected) == 1 and len(expected[0].images) == {None: 20, 0: 18, 1: 17}[action_lead_ns]
    for workers in (2, 5, 9):
        sliced = ConvertOptions(**OPTS, workers=workers, min_slice_s=0.3)
        assert len(plan_bag(bag, sliced, slices=workers).slices) == workers
        assert_same_episodes(convert_bag_pieces(bag, sliced), expected)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("gap_policy", ["split", "error"])
def test_time_slices_give_the_episodes_of_one_pass(tmp_path, case, gap_policy):
    bag = write_irregular(tmp_path / "ep", seed=len(case), **CASES[case])
    opts = dict(OPTS, gap_policy=gap_policy, max_gap_s=0.4 if gap_policy == "split" else 1.0,
                min_fragment_s=0.4, image_topic="image_raw/compressed" if "compressed" in case else None)
    expected = convert_bag_pieces(bag, ConvertOptions(**opts))
    if gap_policy == "split" and CASES[case].get("camera_holes", True):
        assert len(expected) == 2  # the camera hole cut the episode
    for workers in (2, 3, 7):
        sliced = ConvertOptions(**opts, workers=workers, min_slice_s=0.3)
        plan = plan_bag(bag, sliced, slices=workers)
        assert len(plan.slices) == workers
        assert all(start > plan.start_ns for start, _ in plan.slices[1:])
        assert_same_episodes(convert_bag_pieces(bag, sliced), expected)


def test_this_process_reads_a_slightly_longer_last_slice_and_none_is_shorter_than_the_minimum(tmp_path):
    from crl_ros.bags.convert import OWN_SLICE_EXTRA
    assert 0 < OWN_SLICE_EXTRA < 0.2
    bag = write_irregular(tmp_path / "long", seconds=20.0, seed=3, camera_holes=())
    slack = 2 * CAM_PERIOD / SEC   # cuts fall on camera frames, whose period jitters
    for workers, min_slice in ((2, 0.5), (3, 0.5), (4, 4.9)):
        plan = plan_bag(bag, ConvertOptions(**OPTS, workers=workers, min_slice_s=min_slice), slices=workers)
        edges = [plan.start_ns, *(start for start, _ in plan.slices[1:]), plan.end_ns]
        lengths = np.diff(edges) / 1e9
        assert len(lengths) == workers and lengths.min() >= min_slice - slack, lengths
        assert lengths[-1] > lengths[:-1].max() + slack, lengths   # 20 s: 0.2-0.4 s longer
        assert abs(lengths[-1] / lengths.sum() - (1 + OWN_SLICE_EXTRA) / (workers + OWN_SLICE_EXTRA)) < slack / lengths.sum()
    # slices of a quarter of the bag, a little less: four equal ones would do, but the workers' would be too short
    quarter = (plan.end_ns - plan.start_ns) / 4e9 * (1 - OWN_SLICE_EXTRA / 8)
    assert len(plan_bag(bag, ConvertOptions(**OPTS, min_slice_s=quarter), slices=4).slices) == 3


def test_a_bag_that_cannot_be_read_from_a_time_on_is_one_slice(tmp_path):
    bag = write_episode(tmp_path / "ep", 3.0, storage="sqlite3")
    assert plan_bag(bag, ConvertOptions(**OPTS, min_slice_s=0.3), slices=4).slices == [(None, None)]
    bag = write_irregular(tmp_path / "short", seconds=0.5)  # shorter than two slices
    assert plan_bag(bag, ConvertOptions(**OPTS, min_slice_s=0.3), slices=4).slices == [(None, None)]


def test_worker_processes_write_the_bytes_one_process_writes(tmp_path, monkeypatch):
    # the one thing that differs between two runs is the clock (provenance "created")
    monkeypatch.setattr(ds.time, "strftime", lambda *a: "2026-12-06T00:00:00+0000")
    bags = [write_irregular(tmp_path / "long", seconds=5.0, seed=1),
            write_episode(tmp_path / "sqlite", 2.0, storage="sqlite3"),
            write_irregular(tmp_path / "fk", seconds=3.0, seed=2, with_actions=False, split_joints=True)]
    written = {}
    for workers in (1, 2, 3):
        out = tmp_path / f"w{workers}.h5"
        convert_bags(bags, out, ConvertOptions(**OPTS, max_gap_s=0.4, min_fragment_s=0.4, workers=workers,
                                               min_slice_s=0.5), log=lambda m: None)
        written[workers] = out.read_bytes()
    assert ds.load(tmp_path / "w1.h5").num_episodes == 5   # long and fk split at their camera holes
    assert written[2] == written[1] and written[3] == written[1]


def test_a_worker_error_is_the_error_of_one_process(tmp_path, capsys):
    good = write_irregular(tmp_path / "good", seconds=3.0)
    bad = write_irregular(tmp_path / "bad", seconds=4.0, bad_action_at=17)  # in the last slice
    errors = {}
    for workers in (1, 3):
        with pytest.raises(BagError) as exc:
            convert_bags([good, bad], tmp_path / "d.h5", ConvertOptions(**OPTS, workers=workers, min_slice_s=0.5))
        errors[workers] = str(exc.value)
    assert "bad" in errors[1] and "action has NaN/inf" in errors[1]
    assert errors[3] == errors[1]
    assert not (tmp_path / "d.h5").exists()
    # the CLI says it the same way, whatever the workers
    capsys.readouterr()
    for workers in ("1", "3"):
        assert main(["convert", str(good), str(bad), "--out", str(tmp_path / "d.h5"), "--workers", workers,
                     "--quiet", "--crop", "0", "0", "0", "0", "--size", "8", "8"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == err[2] and "action has NaN/inf" in err[0] and "Traceback" not in "\n".join(err)


def test_the_earliest_bag_error_wins_whichever_worker_finds_it_first(tmp_path):
    # bag 1 fails only once read (a gap with --gap-policy error); bag 2 fails early in its read
    first = write_irregular(tmp_path / "first", seconds=4.0, camera_holes=((2.5, 3.8),))
    second = write_irregular(tmp_path / "second", seconds=4.0, bad_action_at=1)
    for workers in (1, 2, 4):
        with pytest.raises(BagError, match=r"first: topic image_raw: gap of"):
            convert_bags([first, second], tmp_path / "d.h5",
                         ConvertOptions(**OPTS, gap_policy="error", workers=workers, min_slice_s=0.5))


def test_input_errors_come_before_any_progress_bar(tmp_path, capsys):
    folder = tmp_path / "not_a_bag"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    bag = write_episode(tmp_path / "ep", 1.0)
    for args in ([str(folder)], [str(bag), str(folder)], [str(bag), "--image-topic", "camera/missing"]):
        assert main(["convert", *args, "--out", str(tmp_path / "x.h5"), "--size", "8", "8"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("crl convert: error: "), err   # nothing before it: no (empty) progress bar
        assert "converting" not in err
    # with good input the bar shows
    assert main(["convert", str(bag), "--out", str(tmp_path / "x.h5"), "--crop", "0", "0", "0", "0",
                 "--size", "8", "8"]) == 0
    assert "converting 1 bag(s)" in capsys.readouterr().err


def test_workers_default_to_the_cores_this_process_may_use():
    args = build_parser().parse_args(["convert", "b", "--out", "x.h5"])
    assert args.workers == len(os.sched_getaffinity(0))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["convert", "b", "--out", "x.h5", "--workers", "0"])
    with pytest.raises(ValueError, match="worker processes must be >= 1"):
        ConvertOptions(workers=0)


def test_worker_options_stay_out_of_the_provenance(tmp_path):
    bag = write_episode(tmp_path / "ep", 1.0)
    provenance = {}
    for workers in (1, 2):
        out = convert_bags([bag], tmp_path / f"d{workers}.h5", ConvertOptions(**OPTS, workers=workers),
                           log=lambda m: None)
        provenance[workers] = ds.load(out).metadata.provenance["options"]
    assert provenance[1] == provenance[2] and "workers" not in provenance[1]


def test_workers_fork_from_a_lone_thread_and_start_from_a_forkserver_beside_others(tmp_path, monkeypatch):
    from crl_ros.bags import convert
    import threading
    monkeypatch.setattr(ds.time, "strftime", lambda *a: "2026-12-06T00:00:00+0000")
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and type(t).__name__ != "TMonitor"]
    ros = any(m == "rclpy" or m.startswith("rclpy.") for m in sys.modules)   # an earlier test may have imported it
    assert convert._worker_context().get_start_method() == ("forkserver" if others or ros else "fork")
    if not ros:
        with monkeypatch.context() as patched:
            patched.setitem(sys.modules, "rclpy", types.ModuleType("rclpy"))   # as in trainer_node's process
            assert convert._worker_context().get_start_method() == "forkserver"
    bag = write_irregular(tmp_path / "long", seconds=5.0, seed=1)
    opts = ConvertOptions(**OPTS, max_gap_s=0.4, min_fragment_s=0.4, min_slice_s=0.5)
    convert_bags([bag], tmp_path / "one.h5", opts, log=lambda m: None)
    stop = threading.Event()
    beside = threading.Thread(target=stop.wait, daemon=True)   # as rclpy's executor thread would be
    beside.start()
    try:
        assert convert._worker_context().get_start_method() == "forkserver"
        convert_bags([bag], tmp_path / "two.h5", ConvertOptions(**{**opts.__dict__, "workers": 2}),
                     log=lambda m: None)
    finally:
        stop.set()
    assert (tmp_path / "two.h5").read_bytes() == (tmp_path / "one.h5").read_bytes()

