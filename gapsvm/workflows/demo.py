"""The demo's data: real images that ship inside scikit-image's wheel, written as a folder.

``skimage.data.lfw_subset()`` gives 100 faces and 100 non-faces (25x25 grayscale); the whole
photos (``astronaut``, ``camera``, ...) come from the same wheel. A linear head trained on the
thumbnails is then asked where the faces are in the photos. :func:`demo_commands` lists the
``gapsvm`` commands the demo runs; the CLI runs them (:mod:`gapsvm.cli.demo`).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gapsvm.core.output import write_png
from gapsvm.utils.extras import install_hint

__all__ = [
    "FACE_BOXES",
    "FACE_CLASS",
    "NOT_FACE_CLASS",
    "PHOTOS",
    "PHOTO_SIZE",
    "REPORT_NOTES",
    "TRAIN_SIZE",
    "DemoData",
    "DemoError",
    "demo_commands",
    "report_notes",
    "write_demo_data",
    "write_report_notes",
]


FACE_CLASS = "face"


NOT_FACE_CLASS = "not_face"


#: Whole photographs from ``skimage.data`` written to the photos folder (all free of copyright
#: restrictions, see :data:`_PHOTO_SOURCES`). Two show a human face, three do not.
PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket")


#: Hand-drawn face boxes ``(x_min, y_min, x_max, y_max)``, exclusive maxima, in the photos' own
#: pixels: forehead to chin and cheek to cheek (ear included for the profile in ``camera``),
#: hair and neck excluded. Drawn by looking at the images with a 20-px grid.
FACE_BOXES = {
    "astronaut.png": (170, 60, 275, 175),
    "camera.png": (178, 125, 258, 200),
}


#: Network input size for the 25x25 thumbnails: the face then spans about 100 px, the size
#: of the faces in the 512x512 photos at their own resolution.
TRAIN_SIZE = "112x112"


#: Network input size for the whole photos: their own size.
PHOTO_SIZE = "native"


#: The paragraphs ``gapsvm report --notes`` shows in the demo's report, in the data folder.
REPORT_NOTES = "report_notes.txt"


_PHOTO_SOURCES = {
    "astronaut": "Eileen Collins, NASA Great Images database; public domain",
    "camera": "photographer Lav Varshney; CC0",
    "chelsea": "Chelsea the cat, photographer Stefan van der Walt; CC0",
    "coffee": "Pikolo Espresso Bar, photographer Rachel Michetti; CC0",
    "rocket": "DSCOVR launch on Falcon 9, SpaceX; public domain",
}


def report_notes(counts: dict[str, int], train_size: str, photo_size: str, weights: object) -> str:
    """What the demo's report says about its own setup, whatever the numbers turn out to be.

    Parameters
    ----------
    counts : dict
        Thumbnails per class (:attr:`DemoData.counts`).
    train_size, photo_size : str
        ``--input-size`` of the thumbnails and of the photos.
    weights : "imagenet", path or None
        None adds a warning that the maps of random weights mean nothing.

    Returns
    -------
    str
        Paragraphs separated by blank lines.
    """
    paras = [
        f"Training set: {counts[FACE_CLASS]} faces and {counts[NOT_FACE_CLASS]} non-faces from "
        "Labeled Faces in the Wild (skimage.data.lfw_subset), 25x25 grayscale, fed to VGG16 at "
        f"{train_size}; a linear SVM on the 512 averaged block5_conv3 channels. The photos "
        f"below are seen at input size {photo_size} ('native': their own size), with the map "
        f"of the class {FACE_CLASS} drawn on every one.",
        "Read the maps, not the labels: a whole photograph is not a face crop. Its score is "
        "the mean of the map over the whole frame plus the intercept, and a face covering a "
        "few per cent of the frame rarely lifts that mean above zero, so whole photos are "
        f"expected to be predicted {NOT_FACE_CLASS} even where the map finds the face.",
        "What this classifier cannot know: the non-faces are background patches of LFW photos "
        "(many flat or half black), so it learned face versus background, not human "
        "face versus anything else. Nothing taught it that a cat's face is not a face: see "
        "where the map goes on chelsea.png. Boxes were drawn by hand for the two photos with a "
        "human face; the localisation lines under Findings are computed, not written.",
    ]
    if weights is None:
        paras.insert(0, "RANDOM WEIGHTS (--weights none): a plumbing check; these maps and "
                     "scores mean nothing.")
    return "\n\n".join(paras) + "\n"


_LFW_FACES = 100  # lfw_subset(): the first 100 images are faces, the next 100 are not


class DemoError(RuntimeError):
    """A demo step failed; the message names the step (its own error was printed already)."""


@dataclass(frozen=True)
class DemoData:
    """Where :func:`write_demo_data` put things.

    Attributes
    ----------
    root : Path
        The data folder.
    faces : Path
        Folder-per-class training set: ``faces/face/*.png`` and ``faces/not_face/*.png``.
    photos : Path
        Flat folder of whole photographs (PNG).
    boxes_csv : Path
        ``filename,label,x_min,y_min,x_max,y_max`` face boxes for the photos (exclusive maxima).
    counts : dict
        Number of thumbnails per class.
    """

    root: Path
    faces: Path
    photos: Path
    boxes_csv: Path
    counts: dict[str, int]


def _skimage_data():
    try:
        import skimage.data
    except ImportError:
        raise DemoError(
            "the demo's images ship with scikit-image (gapsvm's demo extra), which is not "
            "installed: "
            f"{install_hint('demo')}"
        ) from None
    return skimage.data


def _write_class(folder: Path, prefix: str, images: np.ndarray) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    written = set()
    for i, img in enumerate(images):
        name = f"{prefix}_{i:03d}.png"
        write_png(folder / name, img)
        written.add(name)
    # A smaller run after a larger one must not leave the larger run's files behind (they
    # would be trained on); only files following the demo's own naming are touched.
    pattern = re.compile(rf"{re.escape(prefix)}_\d{{3}}\.png")
    for p in folder.iterdir():
        if pattern.fullmatch(p.name) and p.name not in written:
            p.unlink()
    return len(written)


def write_demo_data(
    root: str | os.PathLike,
    n_per_class: int | None = None,
    photos: Sequence[str] = PHOTOS,
) -> DemoData:
    """Write the demo dataset from images shipped inside scikit-image (no network).

    Layout::

        root/faces/face/face_000.png ...          LFW faces, 25x25 grayscale
        root/faces/not_face/not_face_000.png ...  LFW background patches, 25x25 grayscale
        root/photos/astronaut.png ...             whole photographs (RGB, or gray for camera)
        root/face_boxes.csv                       face boxes in the photos
        root/SOURCES.txt                          where every image comes from, licences

    Parameters
    ----------
    root : str or path-like
        Folder to write into (created; files the demo wrote before are replaced).
    n_per_class : int, optional
        Use only the first ``n`` thumbnails of each class (1..100); default all 100.
    photos : sequence of str, default=PHOTOS
        Names of ``skimage.data`` photographs to write.

    Returns
    -------
    DemoData

    Raises
    ------
    DemoError
        scikit-image is missing, or a photo name is not an image in ``skimage.data``.
    ValueError
        ``n_per_class`` outside 1..100.
    """
    data = _skimage_data()
    if n_per_class is not None and not 1 <= int(n_per_class) <= _LFW_FACES:
        raise ValueError(f"n_per_class must be between 1 and {_LFW_FACES}, got {n_per_class!r}")
    n = _LFW_FACES if n_per_class is None else int(n_per_class)
    root = Path(root)
    # lfw_subset() returns floats in [0, 1] (its docstring says uint8); PNG stores 8 bits, so
    # they are rounded to the nearest 1/255 (an error below 0.2 %, invisible to VGG16).
    lfw = np.asarray(data.lfw_subset())
    lfw = np.clip(np.round(lfw * 255.0), 0, 255).astype(np.uint8)
    faces = root / "faces"
    counts = {
        FACE_CLASS: _write_class(faces / FACE_CLASS, FACE_CLASS, lfw[:n]),
        NOT_FACE_CLASS: _write_class(
            faces / NOT_FACE_CLASS, NOT_FACE_CLASS, lfw[_LFW_FACES : _LFW_FACES + n]
        ),
    }
    photo_dir = root / "photos"
    photo_dir.mkdir(parents=True, exist_ok=True)
    for name in photos:
        loader = getattr(data, name, None)
        if not callable(loader):
            raise DemoError(f"skimage.data has no image called {name!r}")
        img = np.asarray(loader())
        if img.dtype != np.uint8 or img.ndim not in (2, 3):
            raise DemoError(f"skimage.data.{name}() is not an 8-bit image ({img.dtype}, "
                            f"{img.shape})")
        write_png(photo_dir / f"{name}.png", img)
    boxes_csv = root / "face_boxes.csv"
    with open(boxes_csv, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["filename", "label", "x_min", "y_min", "x_max", "y_max"])
        for fname, box in FACE_BOXES.items():
            if Path(fname).stem in photos:
                w.writerow([fname, FACE_CLASS, *box])
    lines = [
        "Images written by `gapsvm demo` from the scikit-image wheel (skimage/data/), no network.",
        "",
        "faces/: skimage.data.lfw_subset(), a subset of Labeled Faces in the Wild",
        "  (Huang et al., http://vis-www.cs.umass.edu/lfw/): images 0-99 are faces, 100-199",
        "  patches cut from the background of LFW photos; all 25x25 grayscale.",
        "photos/:",
        *(f"  {p}.png: {_PHOTO_SOURCES.get(p, 'see the skimage.data docstring')}" for p in photos),
        "face_boxes.csv: drawn by hand for gapsvm (exclusive x_max/y_max, photo pixels).",
    ]
    (root / "SOURCES.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return DemoData(root, faces, photo_dir, boxes_csv, counts)


def write_report_notes(
    data: DemoData, train_size: str, photo_size: str, weights: object
) -> Path:
    """Write :func:`report_notes` to ``data.root / REPORT_NOTES``; returns that path."""
    path = data.root / REPORT_NOTES
    path.write_text(report_notes(data.counts, train_size, photo_size, weights), encoding="utf-8")
    return path


def demo_commands(
    out: str | os.PathLike,
    *,
    weights: str | None = "imagenet",
    cache_dir: str | os.PathLike | None = None,
    train_size: str = TRAIN_SIZE,
    photo_size: str = PHOTO_SIZE,
    quiet: bool = False,
) -> list[list[str]]:
    """The ``gapsvm`` command lines the demo runs, in order (without the program name).

    Parameters
    ----------
    out : path
        The demo's output folder (data in ``out/data``).
    weights : "imagenet", path or None
        Backbone weights for ``gapsvm features`` (None: seeded random weights, for tests).
    cache_dir : path, optional
        Passed as ``--cache-dir`` to the steps that compute features (default cache if None).
    train_size, photo_size : str
        ``--input-size`` of the thumbnails and of the photos.
    quiet : bool
        Pass ``-q`` (no progress bars).

    Returns
    -------
    list of list of str
    """
    o = os.fspath(out)
    j = os.path.join
    data = j(o, "data")
    cache = [] if cache_dir is None else ["--cache-dir", os.fspath(cache_dir)]
    q = ["-q"] if quiet else []
    w_name = "none" if weights is None else os.fspath(weights)
    w = [] if weights == "imagenet" else ["--weights", w_name]
    # train reads "imagenet" or random weights from the features file; a weights file it
    # must be given again (see gapsvm.workflows.training.train_from_features)
    w_train = [] if weights is None or weights == "imagenet" else ["--weights", os.fspath(weights)]
    model = j(o, "model.skops")
    photos = j(data, "photos")
    view = ["--target", FACE_CLASS, "--input-size", photo_size]
    return [
        ["features", j(data, "faces"), "--input-size", train_size, "--out",
         j(o, "features.joblib"), *w, *cache, *q],
        ["train", j(o, "features.joblib"), "--classifier", "linearsvc", *w_train, "--out",
         model],
        ["cam", model, photos, *view, "--out", j(o, "cam"), *cache, *q],
        ["report", model, photos, *view, "--boxes", j(data, "face_boxes.csv"),
         "--title", "gapsvm demo: a face classifier trained on 25-pixel thumbnails, "
         "looking at whole photographs", "--notes", j(data, REPORT_NOTES),
         "--out", j(o, "report"), *cache, *q],
    ]  # fmt: skip
