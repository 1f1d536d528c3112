"""`crl analyze`: interpolation strip and arm-matching scores from a (tiny) trained model."""
import json

import numpy as np
import pytest
from PIL import Image

from crl_ros.cli import main
from crl_ros.learning.analysis import interpolate_nearest


def test_interpolate_nearest_walks_the_line_between_endpoints():
    # frames on a line in representation space, plus distractors far away
    line = np.linspace(0, 1, 11)[:, None] * np.array([[2.0, -1.0]])
    distractors = np.array([[10.0, 10.0], [-5.0, 3.0]])
    reprs = np.concatenate([distractors, line])
    nearest, dist = interpolate_nearest(reprs, start=2, end=12, points=6)
    np.testing.assert_array_equal(nearest, [2, 4, 6, 8, 10, 12])
    assert dist.max() < 1e-9
    nearest, _ = interpolate_nearest(reprs, start=2, end=12, points=3, exclude_endpoints=True)
    assert nearest[0] == 2 and nearest[-1] == 12 and nearest[1] == 7


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyze")
    data = root / "reach.h5"
    assert main(["demos", "--env", "widowx", "--task", "push_block", "--episodes", "2",
                 "--out", str(data)]) == 0
    out = root / "run"
    assert main(["train", "--data", str(data), "--algo", "stable_crl", "--out", str(out), "--steps", "2",
                 "--batch-size", "8", "--set", "hidden_width=32", "--no-progress"]) == 0
    return data, out / "model.pt", root


def test_interpolate_writes_a_strip_of_dataset_frames(tiny_run, capsys):
    data, model, root = tiny_run
    picture, report_path = root / "interp.png", root / "interp.json"
    assert main(["analyze", "interpolate", "--model", str(model), "--data", str(data),
                 "--episode", "0", "--points", "5", "--out", str(picture), "--json", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert len(report["frames"]) == 5 and len(report["distances"]) == 5
    # a summary for people: where the picture is and the frames found, not a JSON blob
    out = capsys.readouterr().out
    assert not out.lstrip().startswith("{")
    assert f"picture: {picture}" in out and ", ".join(str(f) for f in report["frames"]) in out
    assert f"from frame {report['start']} to frame {report['end']}" in out
    # the endpoints are their own nearest frames, or frames that look the same: a demo ends
    # holding still at rest, so its last frames can be identical images
    from crl_ros.learning.dataset import load
    images = load(data).images
    for found, endpoint in ((report["frames"][0], report["start"]), (report["frames"][-1], report["end"])):
        assert found == endpoint or np.array_equal(images[found], images[endpoint]), (found, endpoint)
    assert Image.open(picture).size[0] > 5 * 48 * 3
    assert main(["analyze", "interpolate", "--model", str(model), "--data", str(data), "--points", "1"]) == 2
    assert "at least its 2 endpoints" in capsys.readouterr().err


def test_arm_matching_scores_four_images_per_task(tiny_run, tmp_path, capsys):
    _, model, _ = tiny_run
    out_json = tmp_path / "scores.json"
    assert main(["analyze", "arm-matching", "--model", str(model), "--tasks", "push_block", "open_drawer",
                 "--seeds", "2", "--out", str(tmp_path / "arm.png"), "--json", str(out_json)]) == 0
    scores = json.loads(out_json.read_text())
    assert set(scores) == {"push_block", "open_drawer"}
    for row in scores.values():
        assert all(np.isfinite(row[k]) for k in ("start", "arm_matches", "objects_match", "goal"))
        assert 0.0 <= row["objects_preferred"] <= 1.0
    assert Image.open(tmp_path / "arm.png").size[1] > 2 * 48 * 3


def test_analyses_refuse_a_model_without_a_critic(tmp_path, capsys):
    data = tmp_path / "d.h5"
    assert main(["demos", "--env", "pointmass", "--episodes", "2", "--out", str(data)]) == 0
    assert main(["train", "--data", str(data), "--algo", "gcbc", "--out", str(tmp_path / "r"), "--steps", "1",
                 "--batch-size", "4", "--set", "hidden_width=16", "--no-progress"]) == 0
    assert main(["analyze", "interpolate", "--model", str(tmp_path / "r" / "model.pt"),
                 "--data", str(data)]) == 1
    assert "stable_crl" in capsys.readouterr().err
