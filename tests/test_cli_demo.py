"""``gapsvm demo`` (gapsvm.cli.demo): the user's path end to end, and the claim the demo makes
(a face classifier trained on 25-px thumbnails finds the astronaut's face).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from gapsvm import cli
from gapsvm.cli.demo import run_demo
from gapsvm.workflows.demo import PHOTOS

pytestmark = pytest.mark.slow  # every test here runs the network

# Eileen Collins' face in skimage.data.astronaut() (512x512), forehead to chin and cheek to
# cheek, read off the image with a 20-px grid; defined here independently of demo.FACE_BOXES.
ASTRONAUT_FACE = (170, 60, 275, 175)  # x_min, y_min, x_max, y_max (exclusive)


def test_demo_runs_the_user_path_on_random_weights(tmp_path, capsys):
    out = tmp_path / "demo"
    # small network inputs: random weights make the maps meaningless anyway
    status = cli.main(["demo", "--out", str(out), "--n-per-class", "4", "--weights", "none",
                       "--train-size", "32x32", "--photo-size", "x0.25",
                       "--cache-dir", str(tmp_path / "cache"), "-q"])
    assert status == 0
    printed = capsys.readouterr().out
    steps = re.findall(r"^\$ gapsvm (\w+)", printed, flags=re.M)
    assert steps == ["features", "train", "cam", "report"]
    assert "--weights none" in printed and "--input-size x0.25" in printed
    assert "8 images ->" in printed  # 4 per class went through `gapsvm features`
    report = out / "report" / "index.html"
    assert printed.rstrip().endswith(f"report: {report.resolve()}")
    assert sorted(p.name for p in (out / "cam").glob("*.png")) == sorted(
        f"{p}.png.cam-face.png" for p in PHOTOS)
    html = report.read_text(encoding="utf-8")
    for p in PHOTOS:
        assert f'data-name="{p}.png"' in html
    assert html.count('data-target="face"') == len(PHOTOS)


def test_demo_step_failure_is_reported(tmp_path, capsys):
    # a file where the output folder should be: the first step cannot write there
    (tmp_path / "demo").write_text("in the way")
    assert cli.main(["demo", "--out", str(tmp_path / "demo"), "--n-per-class", "1",
                     "--weights", "none", "-q"]) == 1
    assert "gapsvm demo: error:" in capsys.readouterr().err


@pytest.fixture(scope="module")
def real_demo(imagenet_ready, tmp_path_factory):
    """The demo exactly as `make demo` runs it (ImageNet weights, all 200 thumbnails), with a
    fresh feature cache so every image goes through the network."""
    root = tmp_path_factory.mktemp("real_demo")
    lines: list[str] = []
    report = run_demo(root / "out", cache_dir=root / "cache", quiet=True, log=lines.append)
    return root, report, lines


def test_real_demo_trains_an_accurate_face_classifier(real_demo):
    from gapsvm import load_model

    root, _, _ = real_demo
    model = load_model(root / "out" / "model.skops")
    assert list(model.classes_) == ["face", "not_face"]
    assert model.feature_meta_["weights"]["name"] == "imagenet"
    assert model.feature_meta_["input_size"] == "112x112"
    info = model.training_info_
    assert info["n_images"] == 200 and info["cv_folds"] == 5
    assert info["cv_accuracy_mean"] >= 0.95  # measured 1.00 on 5 folds


def test_real_demo_face_map_peaks_on_the_astronauts_face(real_demo):
    from gapsvm import load_model

    root, report, _ = real_demo
    model = load_model(root / "out" / "model.skops").set_params(cache_dir=root / "cache")
    photo = root / "out" / "data" / "photos" / "astronaut.png"
    cam = model.cam([str(photo)], target="face", input_size=None, size="image",
                    normalize=False)[0]
    assert cam.shape == (512, 512)
    y, x = np.unravel_index(np.argmax(cam), cam.shape)
    x0, y0, x1, y1 = ASTRONAUT_FACE
    assert x0 <= x < x1 and y0 <= y < y1, f"face map peaks at ({x}, {y}), outside her face"
    # and the face is where the positive evidence concentrates: well above a uniform map's share
    pos = np.maximum(cam, 0)
    share = pos[y0:y1, x0:x1].sum() / pos.sum()
    area = (x1 - x0) * (y1 - y0) / cam.size
    assert share > 3 * area
    # the report shows the astronaut with the same verdict
    html = Path(report).read_text(encoding="utf-8")
    card = re.search(r'<figure[^>]*data-name="astronaut\.png".*?</figure>', html, re.S)
    assert card is not None and "peak in box" in card.group(0)
    assert f"peak at x={x}, y={y}" in card.group(0)
