"""Tests for gapsvm.evaluate, GapClassifier.boxes and ``gapsvm evaluate``.

The metric math is tested on hand-made cases in test_metrics.py / test_boxes.py. Here: the
CSV reader's errors (file and line named), the feature-cell faithfulness numbers against
scikit-learn's own ``decision_function`` on masked maps (random VGG16 weights, tiny images),
the image-space option against independent network passes, and the command end to end on
three real meeting-room photos with a model trained in the test on INRIA crops.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from gapsvm import GapClassifier
from gapsvm.cli.main import main
from gapsvm.core.boxes import Box, cam_to_boxes
from gapsvm.core.boxes_csv import Annotation, BoxesCSVError, read_boxes_csv
from gapsvm.core.metrics import box_area_share, energy_in_box, pointing_game
from gapsvm.core.overlay import GT_COLOR, PRED_COLOR, evaluation_overlay
from gapsvm.core.sizes import parse_scales
from gapsvm.network.backbone.build import get_backbone
from gapsvm.workflows.evaluate.run import METHODS, evaluate, format_table, write_report

HEADER = "filename,label,x_min,y_min,x_max,y_max\n"


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))  # BGR on disk


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


# ------------------------------------------------------------------ CSV reading


@pytest.fixture
def tiny_images(tmp_path) -> Path:
    d = tmp_path / "imgs"
    _write_rgb(d / "a.png", np.zeros((40, 60, 3), np.uint8))
    _write_rgb(d / "sub" / "b.png", np.full((50, 30, 3), 200, np.uint8))
    (d / "broken.png").write_text("not an image")
    return d


def test_read_boxes_csv_groups_by_image_and_label(tmp_path, tiny_images) -> None:
    f = tmp_path / "boxes.csv"
    # Columns in another order, an extra column, a float that is a whole pixel, a box that
    # touches the right and bottom edges (exclusive maxima may equal the size).
    f.write_text(
        "label,filename,x_min,y_min,x_max,y_max,note\n"
        "person,a.png,0,0,10,10,x\n"
        "dog,a.png,5,5,60,40,\n"
        "person,a.png,20.0,1,30,2,\n"
        "person,sub/b.png,1,2,3,4,\n"
    )
    anns = read_boxes_csv(f, tiny_images)
    assert [(a.filename, a.label) for a in anns] == [
        ("a.png", "person"), ("a.png", "dog"), ("sub/b.png", "person")
    ]
    assert anns[0].boxes == [Box(0, 0, 10, 10), Box(20, 1, 30, 2)]
    assert anns[0].lines == [2, 4]
    assert anns[0].image_hw == (40, 60) and anns[2].image_hw == (50, 30)
    assert Path(anns[2].path) == tiny_images / "sub" / "b.png"
    inclusive = read_boxes_csv(f, tiny_images, inclusive_max=False)
    assert inclusive[1].boxes == [Box(5, 5, 60, 40)]
    # The same numbers read as inclusive maxima cover one more pixel; 60 would then leave
    # the 60-px-wide image.
    g = tmp_path / "incl.csv"
    g.write_text(HEADER + "a.png,person,0,0,9,9\n")
    assert read_boxes_csv(g, tiny_images, inclusive_max=True)[0].boxes == [Box(0, 0, 10, 10)]
    with pytest.raises(BoxesCSVError, match="outside"):
        read_boxes_csv(f, tiny_images, inclusive_max=True)


def test_read_boxes_csv_lists_every_problem_with_file_and_line(tmp_path, tiny_images) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(
        HEADER
        + "a.png,person,0,0,10,10\n"  # 2: fine
        + "missing.png,person,0,0,1,1\n"  # 3
        + "a.png,person,zero,0,1,1\n"  # 4
        + "a.png,person,0,0,10.5,1\n"  # 5
        + "a.png,person,0,0,61,10\n"  # 6: one past the 60-px width
        + "a.png,person,5,5,5,9\n"  # 7: empty
        + "a.png,cat,0,0,1,1\n"  # 8: not a model class
        + "broken.png,person,0,0,1,1\n"  # 9
        + "a.png,,0,0,1,1\n"  # 10
        + "../a.png,person,0,0,1,1\n"  # 11
        + "a.png,person,0,0,1\n"  # 12: a field short
    )
    with pytest.raises(BoxesCSVError) as info:
        read_boxes_csv(f, tiny_images, classes=np.array(["not_person", "person"]))
    err = info.value
    assert [line for line, _ in err.problems] == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    msg = str(err)
    for line, needle in [
        (3, "unknown file 'missing.png'"), (4, "'zero' is not a number"),
        (5, "not a whole pixel"), (6, "outside the 60x40 image"), (7, "empty or inverted"),
        (8, "'cat' is not a class of the model"), (9, "cannot be read"),
        (10, "label is empty"), (11, "relative to the images folder"), (12, "y_max is missing"),
    ]:
        assert f"{f}:{line}: " in msg and needle in msg, needle


@pytest.mark.parametrize(
    ("text", "needle"),
    [("", "empty file"), ("filename,label,x_min,y_min,x_max\n", "missing column(s) ['y_max']"),
     (HEADER, "no boxes")],
)
def test_read_boxes_csv_header_problems(tmp_path, tiny_images, text: str, needle: str) -> None:
    f = tmp_path / "h.csv"
    f.write_text(text)
    with pytest.raises(BoxesCSVError, match=r"h\.csv:1: ") as info:
        read_boxes_csv(f, tiny_images)
    assert needle in str(info.value)
    with pytest.raises(FileNotFoundError):
        read_boxes_csv(f, tmp_path / "nowhere")


def test_parse_scales() -> None:
    assert parse_scales("1,2") == (1.0, 2.0)
    assert parse_scales(" x1.5 , 2, 2 ") == (1.5, 2.0)
    assert parse_scales(2) == (2.0,)
    for bad in ("", "1,a", "0", "-1", "nan"):
        with pytest.raises(ValueError):
            parse_scales(bad)


def test_evaluation_overlay_draws_gt_and_predictions_in_their_colours() -> None:
    img = np.full((40, 60, 3), 90, np.uint8)
    cam = np.zeros((40, 60))
    out = evaluation_overlay(img, cam, [Box(30, 5, 50, 35)], [Box(2, 3, 20, 30)])
    assert out.shape == img.shape and out.dtype == np.uint8
    assert (out[3, 2:20] == GT_COLOR).all()  # top edge of the gt box
    assert (out[5, 30:50] == PRED_COLOR).all()  # top edge of the prediction
    assert not (out[20, 40] == PRED_COLOR).all()  # outlines only
    assert (img == 90).all()  # input untouched


# ------------------------------------------------------------------ random weights, tiny images


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """Logistic regression on random-VGG16 features of 8 synthetic images; 2 test photos."""
    d = tmp_path_factory.mktemp("tiny-eval")
    rng = np.random.default_rng(0)
    train = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(8)]
    for k in range(4, 8):  # class "b": a bright square somewhere
        y, x = rng.integers(0, 32, 2)
        train[k][y : y + 32, x : x + 32] = 255
    model = GapClassifier(LogisticRegression(max_iter=2000), weights=None, input_size=None,
                          cache_dir=d / "cache")
    model.fit(train, ["a"] * 4 + ["b"] * 4)
    photo = rng.integers(0, 120, (64, 96, 3), dtype=np.uint8)
    photo[16:48, 48:80] = 255
    _write_rgb(d / "imgs" / "p0.png", photo)
    _write_rgb(d / "imgs" / "p1.png", rng.integers(0, 256, (80, 64, 3), dtype=np.uint8))
    anns = [
        Annotation("p0.png", str(d / "imgs" / "p0.png"), (64, 96), "b", [Box(48, 16, 80, 48)]),
        Annotation("p1.png", str(d / "imgs" / "p1.png"), (80, 64), "a",
                   [Box(0, 0, 32, 40), Box(32, 40, 64, 80)]),
    ]
    return model, anns, d


def test_boxes_method_matches_the_cam_and_checks_arguments_first(tiny_model) -> None:
    model, anns, _ = tiny_model
    paths = [a.path for a in anns]
    cams = model.cam(paths, "b", normalize=False, input_size=None)
    for mode in ("largest", "all"):
        got = model.boxes(paths, "b", threshold=0.3, mode=mode, input_size=None)
        assert got == [cam_to_boxes(c, 0.3, mode) for c in cams]
    # Bad arguments fail before any image goes through the network.
    bb = get_backbone("vgg16", None, "float32")
    before = bb.images_run
    fresh = [np.full((48, 48, 3), 7, np.uint8)]
    with pytest.raises(ValueError, match="threshold"):
        model.boxes(fresh, threshold=1.5)
    with pytest.raises(ValueError, match="mode"):
        model.boxes(fresh, mode="biggest")
    assert bb.images_run == before


def test_feature_cell_faithfulness_is_exact_for_the_linear_head(tiny_model) -> None:
    """Curves recomputed independently: mask the maps, pool, ask scikit-learn's head."""
    model, anns, _ = tiny_model
    ann = anns[0]
    n_steps = 6
    # Without the cache both sides see the same float32 maps (the cache stores float16).
    cache = model.cache_dir
    model.set_params(cache_dir=None, input_size=1.0)
    try:
        rep = evaluate(model, [ann], scales=[1.0], n_steps=n_steps, faithfulness="features")
        maps = np.asarray(
            model.featurizer().extract([ann.path], maps=True).maps[0], np.float64
        )
        d = model.decision_function([ann.path])[0]
    finally:
        model.set_params(cache_dir=cache, input_size=None)
    cam_summary = rep["summary"]["cam"]
    clf = model.head_.classifier_
    W = clf.coef_[0]  # decision_function > 0 means class "b", the target
    cam = maps @ W
    # The evaluation ranks cells by the CAM; continuous values have no ties to break.
    order = np.argsort(-cam.ravel(), kind="stable")
    n = cam.size
    deletion, insertion = [], []
    for i in range(n_steps + 1):
        chosen = np.zeros(n, bool)
        chosen[order[: i * n // n_steps]] = True
        chosen = chosen.reshape(cam.shape)
        for keep, curve in ((~chosen, deletion), (chosen, insertion)):
            gap = (maps * keep[:, :, None]).mean(axis=(0, 1))
            curve.append(_sigmoid(clf.decision_function(gap[None]))[0])
    np.testing.assert_allclose(cam_summary["mean_deletion_curve"], deletion, rtol=1e-6)
    np.testing.assert_allclose(cam_summary["mean_insertion_curve"], insertion, rtol=1e-6)
    # The unmasked probability is the model's own decision value through a sigmoid.
    full = rep["per_image"][0]["methods"]["cam"]["full_prob"]
    assert full == pytest.approx(_sigmoid(d), rel=1e-6)
    # Average Drop masks with the CAM's positive part scaled to [0, 1].
    e = np.maximum(cam, 0) / cam.max()
    masked = _sigmoid(clf.decision_function((maps * e[:, :, None]).mean(axis=(0, 1))[None]))
    assert rep["per_image"][0]["methods"]["cam"]["masked_prob"] == pytest.approx(masked[0])
    # A map of ones masks nothing: no drop, no increase.
    assert rep["summary"]["uniform"]["average_drop"] == 0.0
    assert rep["summary"]["uniform"]["increase_in_confidence"] == 0.0
    # Ranking by the CAM is optimal for the linear head: no baseline deletes faster.
    for m in ("centre", "uniform", "random"):
        assert cam_summary["deletion_auc"] <= rep["summary"][m]["deletion_auc"] + 1e-12
        assert cam_summary["insertion_auc"] >= rep["summary"][m]["insertion_auc"] - 1e-12


def test_localisation_numbers_and_baselines_on_tiny_photos(tiny_model, tmp_path) -> None:
    model, anns, _ = tiny_model
    # Fill the cache first, so evaluate() and cam() below both read its float16 maps.
    model.featurizer().extract([a.path for a in anns], input_size=1.0)
    rep = evaluate(model, anns, mode="all", threshold=0.3, faithfulness="none",
                   out_dir=tmp_path, seed=3)
    assert rep["counts"] == {"images": 2, "pairs": 2, "gt_boxes": 3}
    assert "average_drop" not in rep["summary"]["cam"]
    cams = [
        model.cam([a.path], a.label, normalize=False, input_size=1.0)[0] for a in anns
    ]
    for a, cam, row in zip(anns, cams, rep["per_image"], strict=True):
        r = row["methods"]["cam"]
        assert r["energy"] == pytest.approx(energy_in_box(cam, a.boxes), rel=1e-5)
        assert r["hit_inside"] == pointing_game(cam, a.boxes, 0)
        assert row["boxes"] == [list(b.as_tuple()) for b in cam_to_boxes(cam, 0.3, "all")]
        assert row["area_share"] == box_area_share(a.image_hw, a.boxes)
        # The uniform map spreads its energy evenly: exactly the boxes' area share.
        assert row["methods"]["uniform"]["energy"] == pytest.approx(row["area_share"])
        # The centre baseline's box is the centred half-size box.
        assert row["methods"]["centre"]["n_pred"] == 1
    assert rep["area_share"] == pytest.approx(np.mean([r["area_share"] for r in rep["per_image"]]))
    pngs = sorted(p.name for p in (tmp_path / "overlays").iterdir())
    assert pngs == ["p0.b.png", "p1.a.png"]
    assert cv2.imread(str(tmp_path / "overlays" / "p1.a.png")).shape == (80, 64, 3)
    # Reproducible: the same seed gives the same random baseline.
    again = evaluate(model, anns, mode="all", threshold=0.3, faithfulness="none", seed=3)
    assert again["summary"]["random"] == rep["summary"]["random"]
    # Strict JSON (NaN -> null) that reads back into the same table.
    write_report(rep, tmp_path / "r.json")
    back = json.loads((tmp_path / "r.json").read_text())
    assert format_table(back) == format_table(rep)
    with pytest.raises(ValueError, match="not a class"):
        evaluate(model, [Annotation("p0.png", anns[0].path, (64, 96), "zebra", [Box(0, 0, 1, 1)])])
    with pytest.raises(ValueError, match="threshold"):
        evaluate(model, anns, threshold=2.0)


def test_image_space_faithfulness_matches_network_passes(tiny_model) -> None:
    model, anns, _ = tiny_model
    ann = anns[0]
    rep = evaluate(model, [ann], faithfulness="image", image_steps=2)
    clf = model.head_.classifier_
    fz = model.featurizer().set_params(cache_dir=None)
    img = cv2.cvtColor(cv2.imread(ann.path), cv2.COLOR_BGR2RGB)

    def prob(images):
        gap = fz.extract(images, input_size=1.0).gap
        return _sigmoid(clf.decision_function(gap))

    black = np.zeros_like(img)
    blurred = cv2.GaussianBlur(img, (11, 11), 5.0)
    p_black, p_blur = prob([black, blurred])
    for m in METHODS:
        curve_del = rep["summary"][m]["mean_deletion_curve"]
        curve_ins = rep["summary"][m]["mean_insertion_curve"]
        assert len(curve_del) == 3
        assert curve_del[-1] == pytest.approx(p_black, abs=1e-5)  # everything deleted
        assert curve_ins[0] == pytest.approx(p_blur, abs=1e-5)  # nothing inserted yet
        assert curve_del[0] == curve_ins[-1] == rep["per_image"][0]["methods"][m]["full_prob"]
    # The uniform map keeps the image as it is: exactly no drop and no increase.
    uni = rep["per_image"][0]["methods"]["uniform"]
    assert uni["masked_prob"] == uni["full_prob"] == pytest.approx(prob([img])[0], abs=1e-5)
    assert rep["summary"]["uniform"]["average_drop"] == 0.0
    assert rep["summary"]["uniform"]["increase_in_confidence"] == 0.0


def test_cli_reports_csv_errors_with_line(tiny_model, tmp_path, capsys) -> None:
    model, _, d = tiny_model
    model.save(tmp_path / "m.skops")
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "p0.png,b,0,0,97,10\n")
    code = main(["evaluate", str(tmp_path / "m.skops"), str(bad), "--images", str(d / "imgs"),
                 "--out", str(tmp_path / "out"), "-q"])
    assert code == 1
    err = capsys.readouterr().err
    assert f"{bad}:2: " in err and "outside the 96x64 image" in err
    assert not (tmp_path / "out").exists()  # nothing run, nothing written


# ------------------------------------------------------------------ real photos, end to end


@pytest.fixture(scope="module")
def person_model_file(tmp_path_factory, persons_slice, imagenet_ready) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("eval-real")
    paths, labels = persons_slice
    model = GapClassifier(input_size=(128, 64), cache_dir=d / "cache").fit(paths, labels)
    model.save(d / "m.skops")
    return d / "m.skops", d / "cache"


def test_evaluate_command_on_real_boxed_photos(
    shared_data, person_model_file, tmp_path, capsys
) -> None:
    boxes_dir = shared_data / "boxes"
    if not (boxes_dir / "boxes.csv").is_file():
        pytest.fail(f"the boxed photos are missing: {boxes_dir}")
    model_path, cache = person_model_file
    with open(boxes_dir / "boxes.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = sorted({r["filename"] for r in rows})[:3]
    subset = tmp_path / "three.csv"
    with open(subset, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(r for r in rows if r["filename"] in names)
    out = tmp_path / "out"
    from gapsvm.estimator.persist import load_model

    model = load_model(model_path)
    model.set_params(cache_dir=cache)
    paths = [str(boxes_dir / "images" / n) for n in names]
    # The network runs here, once; the command and the checks below read the same cached maps.
    model.featurizer().extract(paths, input_size=1.0)
    code = main(["evaluate", str(model_path), str(subset), "--images", str(boxes_dir / "images"),
                 "--out", str(out), "--cache-dir", str(cache), "-q"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    header = next(line for line in printed.splitlines() if line.startswith("metric"))
    assert header.split()[-4:] == list(METHODS)
    for row in ("pointing game", "energy in box", "CorLoc", "deletion AUC", "Average Drop"):
        assert row in printed

    rep = json.loads((out / "evaluation.json").read_text())
    n_boxes = sum(r["filename"] in names for r in rows)
    assert rep["counts"] == {"images": 3, "pairs": 3, "gt_boxes": n_boxes}
    s = rep["summary"]
    # Real behaviour, with a big margin: the person CAM puts far more of its mass on the
    # people than their area share (about 0.1 here) and than the model-free baselines.
    assert s["cam"]["energy_in_box"] > 2.5 * rep["area_share"]
    assert s["cam"]["energy_in_box"] > s["centre"]["energy_in_box"] + 0.15
    assert s["uniform"]["energy_in_box"] == pytest.approx(rep["area_share"])
    # Insertion by CAM order beats every baseline order (optimal for the linear head).
    assert s["cam"]["insertion_auc"] > max(s[m]["insertion_auc"] for m in METHODS[1:])

    # Independent recomputation of the CAM rows from the public API.
    cams = model.cam(paths, "person", normalize=False, input_size=1.0)
    hits, energies = [], []
    for name, cam in zip(names, cams, strict=True):
        gt = [Box(int(r["x_min"]), int(r["y_min"]), int(r["x_max"]), int(r["y_max"]))
              for r in rows if r["filename"] == name]
        hits.append(pointing_game(cam, gt, 15.0 * 320 / 224))
        energies.append(energy_in_box(cam, gt))
    assert s["cam"]["pointing_game"] == pytest.approx(np.mean(hits))
    assert s["cam"]["energy_in_box"] == pytest.approx(np.mean(energies), rel=1e-4)

    # One overlay per photo at the photo's size, with the gt outlines in white.
    first = rep["per_image"][0]
    overlay = cv2.cvtColor(cv2.imread(str(out / "overlays" / f"{Path(names[0]).stem}.person.png")),
                           cv2.COLOR_BGR2RGB)
    assert overlay.shape == (320, 640, 3)
    gt0 = next(r for r in rows if r["filename"] == first["filename"])
    x0, y0, x1 = int(gt0["x_min"]), int(gt0["y_min"]), int(gt0["x_max"])
    top_edge = overlay[y0, x0:x1]
    assert ((top_edge == GT_COLOR).all(axis=1) | (top_edge == PRED_COLOR).all(axis=1)).mean() > 0.5
    # The CAM box is in the JSON and drawn in magenta.
    bx = first["boxes"][0]
    assert (overlay[bx[1], bx[0] : bx[2]] == PRED_COLOR).all(axis=1).mean() > 0.5
