"""The hostile-input corpus (``_corpus.py``) through feature extraction, training and the
command line: every bad input gets a named error, and the rest of the work completes.

The CLI is run in-process through :func:`gapsvm.cli.main` (the ``gapsvm`` entry point), so
one backbone build serves every case; the subprocess tests are in ``test_interrupt.py``.
Reading the corpus file by file (no network) is ``test_reliability_reading.py``.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from _corpus import BAD, GOOD, SCAN, reading_as_user
from _helpers import run_cli
from sklearn.linear_model import LogisticRegression

from gapsvm import GapClassifier, GapFeaturizer, ImageReadError, ModelLoadError, load_model
from gapsvm.core.decode import read_image
from gapsvm.core.scan import load_directory
from gapsvm.network.backbone.build import get_backbone
from gapsvm.network.features_file import read_features_file, write_features_file
from gapsvm.utils.safe_load import safe_joblib_load

pytestmark = pytest.mark.slow

SIZE = (32, 32)  # two block5 cells: the smallest fixed size, the cheapest network pass


@pytest.fixture
def work(tmp_path):
    """A fresh folder for caches and outputs."""
    return tmp_path


@pytest.fixture(scope="module")
def backbone():
    return get_backbone("vgg16", None)


def _featurizer(cache_dir, input_size=SIZE) -> GapFeaturizer:
    return GapFeaturizer(weights=None, input_size=input_size, cache_dir=cache_dir, verbose=0,
                         batch_size=8).fit()


# -- folder runs: API ----------------------------------------------------------------------
def test_api_folder_run_names_every_bad_file_and_computes_all_good_ones(corpus, work, backbone):
    paths, _, _ = load_directory(corpus.data)
    fz = _featurizer(work / "cache")
    with reading_as_user(corpus.p("person/locked.png")):
        res = fz.extract(paths, on_error="skip")
    got = {corpus.rel(e.path): e.reason for e in res.errors}
    assert set(got) == set(BAD)
    for rel, want in BAD.items():
        assert got[rel].startswith(want), (rel, got[rel])
    ok = {corpus.rel(p) for p, k in zip(paths, res.ok, strict=True) if k}
    assert ok == set(GOOD) and res.n_computed == len(GOOD)
    assert np.all(np.isfinite(res.gap[res.ok])) and np.all(np.isnan(res.gap[~res.ok]))
    hw = {corpus.rel(p): h for p, h in zip(paths, res.image_hw, strict=True)}
    assert hw["person/exif6.jpg"] == (56, 40)  # the rotated size
    assert hw["person/tiny1x1.png"] == (1, 1)
    # Same pixels, same features: the non-ASCII name is only a name.
    i = paths.index(str(corpus.p("person/nön ascii é.png")))
    want = fz.transform([read_image(paths[i])])[0]
    # float32 rounding only: one image alone and in a batch of many can differ in the last bits
    np.testing.assert_allclose(res.gap[i], want, rtol=1e-5, atol=1e-5)

    # on_error="raise" (the default): every readable image is computed and cached first,
    # then one error names the first bad file and counts the others.
    with reading_as_user(corpus.p("person/locked.png")), pytest.raises(ImageReadError) as info:
        fz.transform(paths)
    assert len(info.value.errors) == len(BAD)
    assert f"(and {len(BAD) - 1} more unreadable: " in str(info.value)
    before = backbone.images_run
    again = fz.extract(corpus.good_paths())
    assert again.n_computed == 0 and backbone.images_run == before  # nothing was lost


def test_fit_with_a_bad_file_keeps_the_finished_work(corpus, work, backbone):
    good = corpus.good_paths()
    paths = [*good, str(corpus.p("person/truncated.jpg"))]
    y = ["person" if "/person/" in p else "not_person" for p in paths]
    clf = GapClassifier(LogisticRegression(), weights=None, input_size=SIZE,
                        cache_dir=work / "cache")
    with pytest.raises(ImageReadError, match=r"truncated\.jpg.*truncated JPEG"):
        clf.fit(paths, y)
    before = backbone.images_run
    clf.fit(good, y[:-1])  # the user drops the bad file: nothing is computed twice
    assert backbone.images_run == before


@pytest.mark.parametrize("input_size", [None, 2.0, 0.5])
def test_images_smaller_than_a_feature_cell_are_upscaled(corpus, work, input_size):
    """Native size and scale factors upscale (aspect kept) to a 32-px shorter side, i.e. two
    stride-16 cells; a fixed (h, w) is used as given."""
    fz = _featurizer(work / "cache", input_size=input_size)
    tall = np.zeros((10, 40, 3), np.uint8)
    res = fz.extract([str(corpus.p("person/tiny1x1.png")), str(corpus.p("person/tiny10x10.png")),
                      tall], maps=True)
    scale = 1.0 if input_size is None else input_size
    assert res.input_hw[0] == (32, 32) and res.input_hw[1] == (32, 32)
    short = 10 * scale
    want_w = round(40 * scale * (32 / short)) if short < 32 else round(40 * scale)
    assert res.input_hw[2] == (32, want_w)
    assert [m.shape[:2] for m in res.maps] == [(2, 2), (2, 2), (2, want_w // 16)]
    assert np.all(np.isfinite(res.gap))


# -- labels, targets, mismatched files, newer models: API -----------------------------------
def test_one_class_and_wrong_length_labels_fail_before_any_image_is_computed(corpus, backbone):
    fresh = [np.full((32, 32, 3), v, np.uint8) for v in (3, 5, 7)]  # never cached anywhere
    clf = GapClassifier(weights=None, input_size=SIZE, cache_dir=None)
    before = backbone.images_run
    with pytest.raises(ValueError, match=r"got 2 labels for 3 images: one label per image"):
        clf.fit(fresh, ["a", "b"])
    with pytest.raises(ValueError, match=r"need at least two classes to train a classifier, "
                       r"got only array\(\['a'\]"):
        clf.fit(fresh, ["a", "a", "a"])
    assert backbone.images_run == before


@pytest.fixture(scope="module")
def model_file(corpus, backbone, tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    good = corpus.good_paths()
    y = ["person" if "/person/" in p else "not_person" for p in good]
    clf = GapClassifier(LogisticRegression(), weights=None, input_size=SIZE,
                        cache_dir=d / "cache").fit(good, y)
    path = d / "model.skops"
    clf.save(path)
    return path


def test_unknown_cam_target_is_refused_before_any_image_is_computed(model_file, backbone):
    clf = load_model(model_file)
    before = backbone.images_run
    with pytest.raises(ValueError, match=r"unknown target class 'cat'; the model's classes "
                       r"are \['not_person', 'person'\]"):
        clf.cam([np.full((32, 32, 3), 9, np.uint8)], target="cat")
    assert backbone.images_run == before


def test_features_from_other_weights_or_input_size_are_refused(corpus, work, model_file):
    fz = _featurizer(work / "cache")
    X = fz.transform(corpus.good_paths())
    y = ["person" if "/person/" in p else "not_person" for p in corpus.good_paths()]
    meta = fz.metadata()
    with pytest.raises(ValueError, match=r"the features were computed with weights "
                       r"'random\(seed=0\)', but this model has weights='imagenet'"):
        GapClassifier(weights="imagenet", input_size=SIZE).fit_features(X, y, meta)
    with pytest.raises(ValueError, match=r"the features were computed at input size 32x32, "
                       r"but this model has input_size 64x64"):
        GapClassifier(weights=None, input_size=(64, 64)).fit_features(X, y, meta)


def _newer(model_file: Path, dest: Path) -> Path:
    clf = load_model(model_file)
    clf.feature_meta_ = {**clf.feature_meta_, "gapsvm_version": "99.1.0"}
    clf.save(dest)
    return dest


def test_model_from_a_newer_gapsvm_is_refused(model_file, tmp_path):
    newer = _newer(model_file, tmp_path / "newer.skops")
    with pytest.raises(ModelLoadError, match=r"was written by gapsvm 99.1.0, newer than this "
                       r"gapsvm .*; upgrade gapsvm to load it"):
        load_model(newer)


# -- the same cases on the command line ----------------------------------------------------
def test_cli_folder_run_reports_every_bad_file_and_writes_the_rest(corpus, work, capsys):
    out, errs = work / "features.joblib", work / "errors.csv"
    with reading_as_user(corpus.p("person/locked.png")):
        rc, stdout, stderr = run_cli(
            capsys, "features", corpus.data, "--weights", "none", "--input-size", "32x32",
            "--cache-dir", work / "cache", "--out", out, "--errors", errs, "-q",
        )
    assert rc == 0, stderr
    n_bad = len(BAD) + len(SCAN)
    assert f"{len(GOOD)} images -> {out} ({len(GOOD)} computed, 0 from cache" in stdout
    lines = stderr.splitlines()
    assert f"{n_bad} file(s) skipped:" in lines
    for rel, want in {**BAD, **SCAN}.items():
        assert any(ln.startswith(f"  {rel}: {want}") for ln in lines), (rel, stderr)
    with open(errs, newline="", encoding="utf-8") as fh:
        rows = {r["path"]: r["reason"] for r in csv.DictReader(fh)}
    assert set(rows) == set(BAD) | set(SCAN)
    for rel, want in {**BAD, **SCAN}.items():
        assert rows[rel].startswith(want)
    data = read_features_file(out)
    assert sorted(data["paths"]) == sorted(GOOD) and data["X"].shape == (len(GOOD), 512)
    assert {e["path"]: e["reason"] for e in data["errors"]} == rows  # same list, in the file
    hw = {p: tuple(h) for p, h in zip(data["paths"], data["image_hw"], strict=True)}
    assert hw["person/exif6.jpg"] == (56, 40) and hw["person/tiny1x1.png"] == (1, 1)

    # --strict: the same complete file, but a failing exit status.
    with reading_as_user(corpus.p("person/locked.png")):
        rc, stdout, _ = run_cli(
            capsys, "features", corpus.data, "--weights", "none", "--input-size", "32x32",
            "--cache-dir", work / "cache", "--out", work / "strict.joblib", "--strict", "-q",
        )
    assert rc == 1 and f"0 computed, {len(GOOD)} from cache" in stdout
    np.testing.assert_array_equal(read_features_file(work / "strict.joblib")["X"], data["X"])


def test_cli_folder_with_nothing_usable_fails_and_still_lists_why(corpus, work, capsys):
    bad = work / "all bad"
    bad.mkdir()
    for rel in ("person/zero.jpg", "person/notes.jpg", "not_person/crc.png"):
        shutil.copyfile(corpus.p(rel), bad / Path(rel).name)
    rc, _, stderr = run_cli(capsys, "features", bad, "--weights", "none", "--input-size",
                            "32x32", "--cache-dir", work / "c", "--out", work / "f.joblib",
                            "--errors", work / "e.csv", "-q")
    assert rc == 1
    assert f"gapsvm features: error: no usable image in {str(bad)!r}; nothing written" in stderr
    assert "  zero.jpg: empty file (0 bytes)" in stderr
    assert not (work / "f.joblib").exists()
    assert len(list(csv.DictReader(open(work / "e.csv", encoding="utf-8")))) == 3


def test_cli_an_empty_error_csv_is_still_written(corpus, work, capsys):
    flat = work / "flat"
    flat.mkdir()
    shutil.copyfile(corpus.p("not_person/n0.png"), flat / "a.png")
    rc, _, _ = run_cli(capsys, "features", flat, "--weights", "none", "--input-size", "32x32",
                       "--cache-dir", work / "c", "--out", work / "f.joblib", "--errors",
                       work / "e.csv", "-q")
    assert rc == 0 and (work / "e.csv").read_text(encoding="utf-8").strip() == "path,reason"


def test_cli_tiny_images_at_native_size_are_upscaled(corpus, work, capsys):
    tiny = work / "tiny"
    tiny.mkdir()
    for rel in ("person/tiny1x1.png", "person/tiny10x10.png"):
        shutil.copyfile(corpus.p(rel), tiny / Path(rel).name)
    rc, stdout, stderr = run_cli(capsys, "features", tiny, "--weights", "none", "--input-size",
                                 "native", "--cache-dir", work / "c", "--out",
                                 work / "t.joblib", "-q")
    assert rc == 0 and "2 images -> " in stdout and stderr == ""
    data = read_features_file(work / "t.joblib")
    assert [tuple(h) for h in data["image_hw"]] == [(10, 10), (1, 1)]
    assert np.all(np.isfinite(data["X"]))
    # What the network saw, as the cache records it: two stride-16 cells a side.
    seen = [safe_joblib_load(p)["input_hw"] for p in (work / "c").rglob("*.joblib")]
    assert sorted(seen) == [(32, 32), (32, 32)]


def test_cli_one_class_and_damaged_label_files(corpus, work, capsys):
    one = work / "one"
    (one / "person").mkdir(parents=True)
    for rel in ("person/rgb.jpg", "person/gray.png"):
        shutil.copyfile(corpus.p(rel), one / rel)
    feats = work / "one.joblib"
    rc, stdout, _ = run_cli(capsys, "features", one, "--weights", "none", "--input-size",
                            "32x32", "--cache-dir", work / "c", "--out", feats, "-q")
    assert rc == 0 and "classes: person (2)" in stdout  # one class is fine for features
    rc, _, stderr = run_cli(capsys, "train", feats, "--out", work / "m.skops")
    assert rc == 1
    assert f"gapsvm train: error: {feats} has a single class ['person']: need two or more" in (
        stderr
    )
    assert not (work / "m.skops").exists()

    # Labels of the wrong length (a hand-edited or damaged features file).
    data = read_features_file(feats)
    write_features_file(work / "bad.joblib", {**data, "y": np.array(["person"] * 3)})
    with pytest.raises(ValueError, match="is damaged: 3 labels for 2 feature rows"):
        read_features_file(work / "bad.joblib")
    rc, _, stderr = run_cli(capsys, "train", work / "bad.joblib", "--out", work / "m.skops")
    assert rc == 1 and "is damaged: 3 labels for 2 feature rows" in stderr


def test_cli_features_from_other_weights_are_refused_at_train(corpus, work, capsys):
    feats = work / "f.joblib"
    run_cli(capsys, "features", corpus.data / "not_person", "--weights", "none",
            "--input-size", "32x32", "--cache-dir", work / "c", "--out", feats, "-q")
    data = read_features_file(feats)
    two = {**data, "y": np.array(["a", "b"] * (len(data["X"]) // 2)
                                 + ["a"] * (len(data["X"]) % 2))}
    write_features_file(feats, two)
    rc, _, stderr = run_cli(capsys, "train", feats, "--weights", "imagenet", "--cv", "0",
                            "--out", work / "m.skops")
    assert rc == 1
    assert ("gapsvm train: error: the features were computed with weights 'random(seed=0)', "
            "but this model has weights='imagenet'") in stderr
    assert not (work / "m.skops").exists()


def test_cli_predict_and_cam_on_the_corpus(corpus, work, model_file, capsys, backbone):
    with reading_as_user(corpus.p("person/locked.png")):
        rc, stdout, stderr = run_cli(capsys, "predict", model_file, corpus.data, "--csv",
                                     "--cache-dir", work / "c")
    assert rc == 0, stderr
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert len(rows) == len(GOOD)
    for rel, want in BAD.items():
        assert f"{corpus.p(rel)}: {want}" in stderr, rel

    before = backbone.images_run
    rc, _, stderr = run_cli(capsys, "cam", model_file, corpus.data, "--target", "cat",
                            "--out", work / "cams", "--cache-dir", work / "c2", "-q")
    assert rc == 1
    assert ("gapsvm cam: error: unknown --target 'cat'; the model's classes are "
            "['not_person', 'person']") in stderr
    assert backbone.images_run == before and not any((work / "cams").rglob("*.png"))


def test_cli_model_from_a_newer_gapsvm_is_refused(corpus, model_file, tmp_path, capsys):
    newer = _newer(model_file, tmp_path / "newer.skops")
    rc, _, stderr = run_cli(capsys, "predict", newer, corpus.p("not_person/n0.png"))
    assert rc == 1
    assert f"gapsvm predict: error: {newer} was written by gapsvm 99.1.0, newer than" in stderr


def test_a_fifo_never_blocks_a_run(corpus, work, backbone):
    # If a named pipe were opened for reading, this would hang until the suite timeout.
    fz = _featurizer(work / "cache")
    res = fz.extract([str(corpus.p("person/pipe.jpg")), str(corpus.p("not_person/n0.png"))],
                     on_error="skip")
    assert res.ok.tolist() == [False, True]
    assert stat.S_ISFIFO(os.stat(corpus.p("person/pipe.jpg")).st_mode)




def test_cli_cam_at_native_size_fits_photos_to_the_bound_and_refuses_strips(
    model_file, work, capsys
):
    """A 4000x3000 photo is explained at the bound (noted on stderr, overlay at full size),
    a 1x20000 strip is a named error instead of a 32x640000 input, the rest is untouched."""
    from _corpus import smooth_image
    from _helpers import write_rgb

    rng = np.random.default_rng(12)
    folder = work / "photos"
    photo = write_rgb(folder / "photo.jpg", smooth_image(rng, 3000, 4000))
    strip = write_rgb(folder / "strip.png", smooth_image(rng, 1, 20000))
    write_rgb(folder / "small.png", smooth_image(rng, 320, 640))
    rc, stdout, stderr = run_cli(capsys, "cam", model_file, folder, "--input-size", "native",
                                 "--out", work / "cams", "--cache-dir", work / "c", "-q")
    assert rc == 0, stderr
    assert f"{strip}: extreme aspect ratio: the image is 20000x1 pixels" in stderr
    assert (f"{photo}: note: downscaled from 4000x3000 to 1632x1224 pixels to fit the "
            "2,000,000-pixel bound on the network input") in stderr
    assert stderr.count("note: downscaled") == 1  # the small image got its own size
    overlays = sorted((work / "cams").rglob("*.png"))
    assert "2 overlay(s)" in stdout and len(overlays) == 2
    (big,) = [p for p in overlays if p.name.startswith("photo")]
    assert read_image(big).shape == (3000, 4000, 3)
