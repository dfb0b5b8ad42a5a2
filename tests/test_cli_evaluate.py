"""``gapsvm evaluate``'s input sizes (gapsvm/cli/evaluate.py): ``--input-size`` in the grammar
of every other command (scales of each photo and fixed sizes), with ``--scale`` and
``--scales`` kept as the older spellings of scales; and ``--calibrate``: the threshold chosen
on one set, used to score another, recorded with ``--save-model``, and named in the output."""

from __future__ import annotations

import csv
import json

import pytest
from _evaluate import HEADER, tiny_eval_model
from _helpers import run_cli

from gapsvm import load_model
from gapsvm.cli.main import build_parser
from gapsvm.core.sizes import parse_scales
from gapsvm.workflows.evaluate.calibrate import calibrate

BASE = ["evaluate", "model.skops", "boxes.csv", "--images", "imgs", "--out", "out"]


def _settings(*flags: str) -> dict:
    return vars(build_parser().parse_args([*BASE, *flags]))


@pytest.mark.parametrize(
    "old, unified, scales",
    [
        (["--scale", "2"], ["--input-size", "x2"], (2.0,)),
        (["--scale", "1.5"], ["--input-size", "1.5x"], (1.5,)),
        (["--scales", "1,2"], ["--input-size", "x1,x2"], (1.0, 2.0)),
        (["--scales", "1,1.5,2"], ["--input-size", "x1,x1.5,x2"], (1.0, 1.5, 2.0)),
    ],
)
def test_scale_and_input_size_spell_the_same_settings(old, unified, scales) -> None:
    a, b = _settings(*old), _settings(*unified)
    assert a == b  # every setting, not only the scales
    assert a["scales"] == scales == parse_scales(unified[1])


def test_the_spellings_exclude_each_other(capsys) -> None:
    for pair in (["--scale", "2", "--input-size", "x2"], ["--scale", "2", "--scales", "1,2"]):
        with pytest.raises(SystemExit):
            _settings(*pair)
        assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["0", "-1", "a", "1,a", "16x16"])
def test_bad_scales_are_usage_errors(capsys, bad) -> None:
    with pytest.raises(SystemExit) as exc:
        _settings("--input-size", bad)
    assert exc.value.code == 2
    assert "scale" in capsys.readouterr().err


def test_a_bare_number_is_a_size_in_input_size_and_a_scale_in_scale(capsys) -> None:
    # one grammar for --input-size in every command: "2" is 2x2 pixels there, so evaluate,
    # which takes only scales of each photo, refuses it and says how to write the scale
    with pytest.raises(SystemExit) as exc:
        _settings("--input-size", "2")
    assert exc.value.code == 2 and "x2" in capsys.readouterr().err
    assert _settings("--scale", "2")["scales"] == (2.0,)


@pytest.mark.parametrize(
    "text, sizes",
    [
        ("224x224", ((224, 224),)),
        ("224", ((224, 224),)),  # a bare whole number is the square, as in every command
        ("128x64", ((128, 64),)),  # height x width
        ("x1,224x224", (1.0, (224, 224))),  # a multi-scale CAM may mix the two
    ],
)
def test_input_size_takes_the_fixed_size_a_head_was_trained_at(text, sizes) -> None:
    assert _settings("--input-size", text)["scales"] == sizes


def test_no_input_size_means_the_models_calibrated_one_or_x1() -> None:
    # None here: evaluate() takes the model's box_scales_ when recorded, else x1.
    assert _settings()["scales"] is None


def test_calibration_flags_parse_into_candidates() -> None:
    got = _settings("--calibrate", "cal.csv", "--calibrate-scales", "x1,x1.5,x1+x2,224x224")
    assert got["calibrate_scales"] == ((1.0,), (1.5,), (1.0, 2.0), ((224, 224),))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--save-model", "m2.skops"], "--save-model needs --calibrate"),
        (["--calibrate-scales", "x1"], "--calibrate-scales needs --calibrate"),
        (["--calibrate", "c.csv", "--threshold", "0.3"], "--threshold and --calibrate"),
        (["--calibrate", "c.csv", "--calibrate-scales", "x1", "--input-size", "x2"],
         "drop --input-size"),
    ],
)
def test_calibration_flags_that_do_not_go_together(capsys, flags, message) -> None:
    code, _, err = run_cli(capsys, *BASE, *flags)
    assert code == 1 and message in err


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_eval_model(tmp_path_factory.mktemp("tiny-cal"))


def _csv(path, rows) -> str:
    with open(path, "w", newline="") as fh:
        fh.write(HEADER)
        csv.writer(fh).writerows(rows)
    return str(path)


@pytest.mark.slow
def test_calibrate_on_one_image_score_the_other_and_record_it(tiny_model, tmp_path,
                                                              capsys) -> None:
    model, anns, d = tiny_model
    model.save(tmp_path / "m.skops")
    cal = _csv(tmp_path / "cal.csv", [["p0.png", "b", 48, 16, 80, 48]])
    scored = _csv(tmp_path / "scored.csv", [["p1.png", "a", 0, 0, 32, 40],
                                            ["p1.png", "a", 32, 40, 64, 80]])
    common = ["--images", d / "imgs", "--faithfulness", "none", "-q"]
    code, printed, err = run_cli(capsys, "evaluate", tmp_path / "m.skops", scored, *common,
                                 "--calibrate", cal, "--out", tmp_path / "o1",
                                 "--save-model", tmp_path / "m2.skops")
    assert code == 0, err
    # The threshold is the calibration image's choice, computed here on it alone.
    expected = calibrate(model, anns[:1], name=cal)
    rep = json.loads((tmp_path / "o1" / "evaluation.json").read_text())
    source = f"calibrated on {cal} (1 images)"
    assert rep["settings"]["threshold"] == expected.threshold
    assert rep["settings"]["threshold_source"] == source == expected.source
    assert rep["settings"]["calibration"]["gt_known"] == expected.gt_known
    assert f"threshold {expected.threshold:g} ({source})" in printed
    assert [p["filename"] for p in rep["per_image"]] == ["p1.png"]
    assert "m2.skops" in printed and "replaced" not in printed
    saved = load_model(tmp_path / "m2.skops")
    assert saved.box_threshold_ == expected.threshold and saved.box_scales_ == (1.0,)
    # On other data the recorded threshold is the default, and named as such.
    code, printed, err = run_cli(capsys, "evaluate", tmp_path / "m2.skops", scored, *common,
                                 "--out", tmp_path / "o2")
    assert code == 0 and f"({source})" in printed
    code, printed, _ = run_cli(capsys, "evaluate", tmp_path / "m.skops", scored, *common,
                               "--out", tmp_path / "o3")
    assert "threshold 0.2 (default 0.2)" in printed
    code, printed, _ = run_cli(capsys, "evaluate", tmp_path / "m2.skops", scored, *common,
                               "--threshold", "0.3", "--out", tmp_path / "o4")
    assert "threshold 0.3 (given --threshold)" in printed
    # Never calibrate on the images being scored.
    both = _csv(tmp_path / "both.csv", [["p0.png", "b", 48, 16, 80, 48],
                                        ["p1.png", "a", 0, 0, 32, 40]])
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "m.skops", scored, *common,
                           "--calibrate", both, "--out", tmp_path / "o5")
    assert code == 1 and "share 1 image(s) (e.g. 'p1.png')" in err
    assert not (tmp_path / "o5").exists()


# -- --detect (issue 14) --------------------------------------------------------------------
def test_detect_flags_are_shared_with_gapsvm_detect_and_keep_scales_for_the_cam() -> None:
    got = _settings("--detect", "--detect-scales", "2,3", "--window", "8x4,10x5", "--stride",
                    "2", "--nms-iou", "0.4", "--score-threshold", "-0.5", "--max-detections",
                    "7", "--scales", "1,2")
    assert got["detect"] is True and got["scales"] == (1.0, 2.0)  # the CAM's, as before
    detect = vars(build_parser().parse_args(
        ["detect", "m.skops", "x.png", "--target", "a", "--out", "o", "--scales", "2,3",
         "--window", "8x4,10x5", "--stride", "2", "--nms-iou", "0.4", "--score-threshold",
         "-0.5", "--max-detections", "7"]))
    keys = ("detect_scales", "window", "stride", "nms_iou", "score_threshold", "max_detections")
    assert {k: got[k] for k in keys} == {k: detect[k] for k in keys} == {
        "detect_scales": (2.0, 3.0), "window": ((8, 4), (10, 5)), "stride": 2, "nms_iou": 0.4,
        "score_threshold": -0.5, "max_detections": 7}
    assert _settings()["detect"] is False


@pytest.mark.slow
def test_detect_adds_pooled_detection_metrics_to_the_table_and_json(tiny_model, tmp_path,
                                                                     capsys) -> None:
    from gapsvm.core.metrics.detection import detection_summary, false_positive_kinds

    model, anns, d = tiny_model
    model.save(tmp_path / "m.skops")
    boxes = _csv(tmp_path / "boxes.csv", [["p0.png", "b", 48, 16, 80, 48],
                                          ["p1.png", "a", 0, 0, 32, 40],
                                          ["p1.png", "a", 32, 40, 64, 80]])
    code, printed, err = run_cli(capsys, "evaluate", tmp_path / "m.skops", boxes, "--images",
                                 d / "imgs", "--faithfulness", "none", "-q", "--out",
                                 tmp_path / "o", "--detect", "--detect-scales", "1,1.5",
                                 "--window", "2x2", "--max-detections", "5")
    assert code == 0, err
    section = json.loads((tmp_path / "o" / "evaluation.json").read_text())["detection"]
    assert set(section["per_class"]) == {"a", "b"}
    for ann in anns:
        dets = model.detect([ann.path], ann.label, scales=(1.0, 1.5), window="2x2",
                            max_detections=5)
        assert section["per_class"][ann.label]["detect"] == pytest.approx(
            detection_summary(dets, [ann.boxes]), nan_ok=True)
        assert section["false_positives"][ann.label] == pytest.approx(
            false_positive_kinds(dets, [ann.boxes]), nan_ok=True)
    assert section["settings"]["window"] == [[2, 2]]
    assert section["settings"]["baseline"]["threshold"] == 0.2
    assert "detection of 'b': 1 image(s), 1 box(es), pooled" in printed
    assert 'boxes(mode="all")' in printed
    kinds = section["false_positives"]["a"]
    assert (f"detect's {kinds['top']} best-scored: {kinds['true_positives']} true positives; "
            f"false: {kinds['background']} background") in printed
    # A model trained at each photo's own size has no default window: said before any work.
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "m.skops", boxes, "--images",
                           d / "imgs", "-q", "--out", tmp_path / "o2", "--detect")
    assert code == 1 and "window" in err and not (tmp_path / "o2").exists()
