"""gapsvm.workflows.demo: the bundled dataset the demo writes (layout, counts, pixels, checks)."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from gapsvm.workflows.demo import FACE_BOXES, PHOTOS, DemoError, write_demo_data


def test_dataset_layout_counts_and_pixels(tmp_path):
    import skimage.data

    d = write_demo_data(tmp_path / "data", n_per_class=3)
    assert d.counts == {"face": 3, "not_face": 3}
    assert sorted(p.name for p in (d.faces / "face").iterdir()) == [
        "face_000.png", "face_001.png", "face_002.png"]
    assert sorted(p.name for p in (d.faces / "not_face").iterdir()) == [
        "not_face_000.png", "not_face_001.png", "not_face_002.png"]
    lfw = skimage.data.lfw_subset()
    for cls, offset in (("face", 0), ("not_face", 100)):
        for i in range(3):
            img = cv2.imread(str(d.faces / cls / f"{cls}_{i:03d}.png"), cv2.IMREAD_UNCHANGED)
            assert img.shape == (25, 25) and img.dtype == np.uint8  # single-channel PNG
            np.testing.assert_allclose(img, lfw[offset + i] * 255.0, atol=0.5)
    assert sorted(p.name for p in d.photos.iterdir()) == sorted(f"{p}.png" for p in PHOTOS)
    from gapsvm.core.decode import read_image

    # on disk BGR, read back RGB: identical to scikit-image's own arrays
    np.testing.assert_array_equal(read_image(d.photos / "astronaut.png"), skimage.data.astronaut())
    cam = cv2.imread(str(d.photos / "camera.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(cam, skimage.data.camera())
    with open(d.boxes_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["filename"]: tuple(int(r[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
            for r in rows} == FACE_BOXES
    assert {r["label"] for r in rows} == {"face"}
    assert "lfw_subset" in (d.root / "SOURCES.txt").read_text()
    # a smaller second run leaves no thumbnail of the first behind (it would be trained on)
    d2 = write_demo_data(tmp_path / "data", n_per_class=2)
    assert len(list((d2.faces / "face").iterdir())) == 2


def test_full_dataset_is_100_faces_and_100_non_faces(tmp_path):
    d = write_demo_data(tmp_path)
    from gapsvm.core.scan import load_directory

    _, labels, classes = load_directory(d.faces)
    assert classes == ["face", "not_face"]
    assert (labels == "face").sum() == 100 and (labels == "not_face").sum() == 100


def test_writer_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="between 1 and 100"):
        write_demo_data(tmp_path, n_per_class=0)
    with pytest.raises(DemoError, match="no image called 'not_a_photo'"):
        write_demo_data(tmp_path, n_per_class=1, photos=["not_a_photo"])


