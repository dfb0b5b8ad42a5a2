"""An HTML report of class activation maps for a folder of images (``gapsvm report``).

One self-contained page (overlays embedded as base64 PNG): the model card, a summary with
the confusion matrix when the folder has one sub-folder per class, and for each class a grid
of CAM overlays, misclassified images first. Optional ground-truth boxes add a localisation
check (is the map's peak inside the box, and how much of its positive mass is).

The CAMs come from :meth:`GapClassifier.explain` and are drawn with :func:`gapsvm.cam.overlay`;
nothing here recomputes them. TensorFlow is not imported by this module: a fitted model
brings its backbone with it.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gapsvm.core.boxes import Box, as_box
from gapsvm.core.cam import upsample_cam
from gapsvm.core.decode import ImageReadError, read_image
from gapsvm.core.metrics import box_area_share, energy_in_box, pointing_game
from gapsvm.core.overlay import draw_overlay
from gapsvm.core.scan import ScanProblem, load_directory
from gapsvm.core.sizes import format_size, parse_input_size
from gapsvm.estimator.targets import resolve_target
from gapsvm.utils.atomic import atomic_write

__all__ = [
    "Report",
    "ReportEntry",
    "build_report",
    "read_boxes_csv",
]


#: Overlays are embedded with their long side in this range: tiny crops are enlarged so the
#: map is visible, big photos shrunk so the page stays a few megabytes.
DISPLAY_MIN = 128


DISPLAY_MAX = 512


_CHUNK = 64


_BOX_COLOR = (255, 255, 255)


@dataclass
class ReportEntry:
    """One image of the report.

    Attributes
    ----------
    name : str
        Path relative to the images folder (POSIX separators).
    path : str
        The file as found on disk.
    true : str or None
        Label from the class folder, None for a flat folder.
    predicted : str
        The model's prediction.
    target : str
        The class whose map is drawn.
    score : float
        That class's score, ``mean(cam) + intercept`` (for a binary head, the decision
        function for ``classes_[1]`` and its negative for ``classes_[0]``).
    scores : dict
        Every class's score.
    image_hw, input_hw : tuple of int
        The image's own size and the network's input size.
    peak_xy : tuple of int
        ``(x, y)`` of the map's maximum, in image pixels.
    boxes : list of Box
        Ground-truth boxes of the target class (empty without a boxes file).
    hit : bool or None
        Whether the peak lies inside one of ``boxes`` (None without boxes).
    energy, box_share : float or None
        Share of the map's positive mass inside the boxes, and share of the image the boxes
        cover (what a uniform map would get).
    """

    name: str
    path: str
    true: str | None
    predicted: str
    target: str
    score: float
    scores: dict[str, float]
    image_hw: tuple[int, int]
    input_hw: tuple[int, int]
    cam: np.ndarray = field(repr=False)
    peak_xy: tuple[int, int] = (0, 0)
    boxes: list[Box] = field(default_factory=list)
    hit: bool | None = None
    energy: float | None = None
    box_share: float | None = None

    @property
    def misclassified(self) -> bool:
        """True when the image has a label and the prediction differs from it."""
        return self.true is not None and self.true != self.predicted


@dataclass
class Report:
    """What :func:`build_report` found; ``path`` is the page.

    Attributes
    ----------
    path : Path
        The written ``index.html``.
    entries : list of ReportEntry
        Every image that was read, in folder order.
    errors : list of (str, str)
        Files that could not be used and why.
    labels : list of str
        Row and column labels of ``confusion`` (the model's classes, then any other class
        folder names).
    confusion : ndarray of shape (n_labels, n_labels) or None
        Counts, rows true and columns predicted; None for a flat folder.
    findings : list of str
        Plain-text statements the page opens with (accuracy, localisation, caveats).
    """

    path: Path
    entries: list[ReportEntry]
    errors: list[tuple[str, str]]
    labels: list[str]
    confusion: np.ndarray | None
    findings: list[str]


def read_boxes_csv(path: str | os.PathLike) -> dict[str, list[tuple[str, Box]]]:
    """Read ground-truth boxes: ``filename,label,x_min,y_min,x_max,y_max`` per row.

    Coordinates are image pixels with exclusive maxima (the :mod:`gapsvm.boxes` convention);
    ``filename`` is relative to the images folder, or a bare file name.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    dict
        File name -> list of ``(label, Box)``.

    Raises
    ------
    ValueError
        Missing columns or a bad row; the message names the file and the line.
    """
    out: dict[str, list[tuple[str, Box]]] = {}
    need = ("filename", "label", "x_min", "y_min", "x_max", "y_max")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{os.fspath(path)}: missing column(s) {', '.join(missing)} "
                             f"(need {','.join(need)})")
        for row in reader:
            try:
                # as_box refuses 12.5 rather than rounding it: a half pixel means another
                # box convention, which must be converted, not guessed
                box = as_box(tuple(float(row[c]) for c in need[2:]))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{os.fspath(path)}, line {reader.line_num}: {exc}") from None
            name = row["filename"].replace("\\", "/").strip()
            out.setdefault(name, []).append((row["label"].strip(), box))
    return out


# -- collecting ----------------------------------------------------------------------------
def _rel(path: str, root: str) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _collect(
    model: Any, images_dir: str | os.PathLike, target: Any, input_size: Any,
    boxes: dict[str, list[tuple[str, Box]]] | None, verbose: int,
) -> tuple[list[ReportEntry], list[tuple[str, str]], list[str] | None]:
    from gapsvm.utils.progress import progress_bar

    problems: list[ScanProblem] = []
    paths, labels, class_names = load_directory(images_dir, problems)
    root = os.fspath(images_dir)
    errors = [(_rel(p.path, root), p.reason) for p in problems]
    classes = [str(c) for c in model.classes_]
    entries: list[ReportEntry] = []
    with progress_bar(len(paths), verbose, "report") as bar:
        for start in range(0, len(paths), _CHUNK):
            chunk = paths[start : start + _CHUNK]
            info = model.explain(chunk, target, input_size=input_size, on_error="skip")
            for e in info.errors:
                errors.append((_rel(e.path, root), e.reason))
            for j, path in enumerate(chunk):
                cam = info.cams[j]
                if cam is None:
                    continue
                name = _rel(path, root)
                tgt = classes[int(info.target[j])]
                row = info.scores[j]
                hw = tuple(int(v) for v in info.image_hw[j])
                full = upsample_cam(cam, hw)
                py, px = np.unravel_index(int(np.argmax(full)), full.shape)
                entry = ReportEntry(
                    name=name, path=path,
                    true=None if labels is None else str(labels[start + j]),
                    predicted=str(info.predicted[j]), target=tgt,
                    score=info.score(j),
                    scores={c: float(s) for c, s in zip(classes, row, strict=True)},
                    image_hw=hw, input_hw=tuple(int(v) for v in info.input_hw[j]),
                    cam=np.asarray(cam, dtype=np.float32), peak_xy=(int(px), int(py)),
                )  # fmt: skip
                if boxes is not None:
                    found = boxes.get(name) or boxes.get(Path(name).name) or []
                    entry.boxes = [b for lab, b in found if lab == tgt]
                    if entry.boxes:
                        entry.hit = pointing_game(full, entry.boxes, tolerance=0.0)
                        energy = energy_in_box(full, entry.boxes)
                        entry.energy = None if np.isnan(energy) else energy
                        entry.box_share = box_area_share(hw, entry.boxes)
                entries.append(entry)
            bar.update(len(chunk))
    return entries, errors, (None if labels is None else class_names)


def _confusion(entries: list[ReportEntry], labels: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for e in entries:
        cm[index[e.true], index[e.predicted]] += 1
    return cm


# -- drawing -------------------------------------------------------------------------------
def _display_hw(hw: tuple[int, int]) -> tuple[int, int]:
    h, w = hw
    long = max(h, w)
    scale = min(max(long, DISPLAY_MIN), DISPLAY_MAX) / long
    return max(1, round(h * scale)), max(1, round(w * scale))


def _png_base64(rgb: np.ndarray) -> str:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))  # BGR on disk
    if not ok:
        raise ValueError("cannot encode an overlay as PNG")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def _render_overlay(entry: ReportEntry, alpha: float) -> tuple[str, tuple[int, int]]:
    img = read_image(entry.path)
    disp = _display_hw(img.shape[:2])
    out = draw_overlay(img, entry.cam, alpha=alpha, gt_boxes=entry.boxes,
                       peak_xy=entry.peak_xy if entry.boxes else None, display_hw=disp)
    return _png_base64(out), disp


# -- HTML ----------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 color:#1d2330;background:#f4f5f7}
main{max-width:1240px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:22px;margin:4px 0 2px}h2{font-size:18px;margin:28px 0 8px;
 border-bottom:1px solid #d5d9e0;padding-bottom:4px}
.sub{color:#5b6472;margin:0 0 12px}
.panel{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:12px 16px;margin:10px 0}
table{border-collapse:collapse}td,th{padding:3px 10px 3px 0;text-align:left;vertical-align:top}
table.card th{color:#5b6472;font-weight:500;white-space:nowrap}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}
ul.findings{margin:4px 0;padding-left:20px}ul.findings li{margin:3px 0}
table.cm td,table.cm th{border:1px solid #d5d9e0;padding:6px 12px;text-align:center}
table.cm td.ok{background:#e3f4e6}table.cm td.bad{background:#fbe4e4}
table.cm td.zero{color:#9aa2ae;background:#fff}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:12px;
 align-items:start}.grid.photos{grid-template-columns:repeat(auto-fill,minmax(340px,1fr))}
figure{margin:0;background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:6px;
 overflow:hidden}
figure.miss{border:2px solid #d93025;padding:5px}
figure img{display:block;width:100%;height:auto;border-radius:3px;image-rendering:auto}
figcaption{font-size:12.5px;margin-top:5px;line-height:1.4}
figcaption .name{font-weight:600;overflow-wrap:anywhere}
.tag{display:inline-block;font-size:11px;border-radius:3px;padding:0 5px;margin-right:3px;
 color:#fff;background:#d93025}.tag.ok{background:#1e8e3e}.tag.info{background:#5b6472}
.muted{color:#5b6472}.legend{display:inline-block;width:120px;height:10px;vertical-align:middle;
 background:linear-gradient(90deg,#00008f,#0000ff,#00ffff,#ffff00,#ff0000,#800000)}
"""


def _model_card(model: Any, input_size: Any, target: Any) -> list[tuple[str, str]]:
    meta = model.feature_meta_
    head = model.head_.classifier_
    cls = type(head)
    params = head.get_params(deep=False)
    rows = [
        ("backbone", f"{meta.get('backbone')}, cut at {meta.get('layer')} "
                     f"(stride {meta.get('stride')})"),
        ("weights", f"{meta['weights'].get('name')} (sha256 {meta['weights'].get('sha256')})"),
        ("precision", str(meta.get("precision"))),
        ("input size (training)", str(meta.get("input_size"))),
        ("input size (this report)", format_size(input_size)),
        ("head", f"{cls.__module__}.{cls.__qualname__}"),
        ("head parameters", ", ".join(f"{k}={v!r}" for k, v in sorted(params.items()))),
        ("classes", ", ".join(str(c) for c in model.classes_)),
        ("map drawn", "each image's predicted class" if target is None else str(target)),
    ]  # fmt: skip
    info = getattr(model, "training_info_", None) or {}
    if "cv_accuracy_mean" in info:
        folds = ", ".join(f"{s:.3f}" for s in info.get("cv_scores", []))
        rows.append(("cross-validated accuracy",
                     f"{info['cv_accuracy_mean']:.4f} ± {info.get('cv_accuracy_std', 0.0):.4f} "
                     f"({info.get('cv_folds')}-fold; folds {folds})"))
    else:
        rows.append(("cross-validated accuracy",
                     "not recorded (the model was not trained with `gapsvm train`, or with "
                     "--cv 0)"))
    if "n_images" in info:
        src = info.get("features_file")
        rows.append(("training images", f"{info['n_images']}" + (f" (from {src})" if src else "")))
    rows.append(("gapsvm version (model)", str(meta.get("gapsvm_version"))))
    return rows


def _findings(
    entries: list[ReportEntry], errors: list[tuple[str, str]], labelled: bool,
    target: Any, boxes: dict[str, list[tuple[str, Box]]] | None,
) -> list[str]:
    out = []
    n = len(entries)
    if labelled and n:
        bad = [e for e in entries if e.misclassified]
        out.append(f"Accuracy on this folder: {100 * (n - len(bad)) / n:.1f}% "
                   f"({n - len(bad)} of {n} images); {len(bad)} misclassified"
                   + (", shown first in each class." if bad else "."))
    elif n:
        counts: dict[str, int] = {}
        for e in entries:
            counts[e.predicted] = counts.get(e.predicted, 0) + 1
        out.append("No labels (flat folder): images are grouped by predicted class ("
                   + ", ".join(f"{c}: {k}" for c, k in sorted(counts.items())) + ").")
    if target is not None:
        other = [e for e in entries if e.predicted != e.target]
        if other:
            names = ", ".join(e.name for e in other[:8]) + (", ..." if len(other) > 8 else "")
            out.append(
                f"{len(other)} of {n} images are not predicted as {target}, although every map "
                f"drawn is the one for {target}: there the map shows where the evidence for "
                f"{target} lies, but it does not win the whole image ({names})."
            )
    if boxes is not None:
        seen = {e.name for e in entries} | {Path(e.name).name for e in entries}
        stray = sorted(set(boxes) - seen)
        if stray:
            out.append(f"The boxes file names {len(stray)} file(s) not in this folder: "
                       + ", ".join(stray[:5]) + (", ..." if len(stray) > 5 else "") + ".")
        scored = [e for e in entries if e.boxes]
        if not scored:
            out.append("The boxes file has no box of the drawn class for any image here.")
        else:
            hits = [e for e in scored if e.hit]
            misses = [e for e in scored if not e.hit]
            msg = (f"Map peak inside a ground-truth box: {len(hits)} of {len(scored)} images "
                   "with a box")
            if misses:
                msg += "; missed: " + ", ".join(
                    f"{e.name} (peak at x={e.peak_xy[0]}, y={e.peak_xy[1]})" for e in misses)
            out.append(msg + ".")
            en = [e for e in scored if e.energy is not None]
            if en:
                out.append(
                    f"Share of the map's positive mass inside the boxes: "
                    f"{100 * np.mean([e.energy for e in en]):.0f}% on average, where the boxes "
                    f"cover {100 * np.mean([e.box_share for e in en]):.1f}% of the image "
                    "(what a uniform map would get)."
                )
    if errors:
        out.append(f"{len(errors)} file(s) could not be used; they are listed at the end.")
    return out


def _card_html(entry: ReportEntry, png: str, disp_hw: tuple[int, int]) -> str:
    cls = ["miss"] if entry.misclassified else []
    lines = [f'<span class="name">{_e(entry.name)}</span>']
    if entry.true is not None:
        tag = ('<span class="tag">misclassified</span>' if entry.misclassified
               else '<span class="tag ok">correct</span>')
        lines.append(f"{tag} true: <b>{_e(entry.true)}</b> · predicted: "
                     f"<b>{_e(entry.predicted)}</b>")
    else:
        lines.append(f"predicted: <b>{_e(entry.predicted)}</b>")
    lines.append(f"{_e(entry.target)} score: <b>{entry.score:+.3f}</b>")
    if entry.boxes:
        where = f"x={entry.peak_xy[0]}, y={entry.peak_xy[1]}"
        lines.append(
            ('<span class="tag ok">peak in box</span>' if entry.hit
             else '<span class="tag">peak outside box</span>')
            + f' <span class="muted">peak at {where}</span>'
        )
        if entry.energy is not None:
            lines.append(f"{100 * entry.energy:.0f}% of positive map mass in a box covering "
                         f"{100 * entry.box_share:.1f}% of the image")
        else:
            lines.append(f"no positive evidence for {_e(entry.target)} anywhere in the image")
    lines.append(f'<span class="muted">{entry.image_hw[1]}×{entry.image_hw[0]} px, network '
                 f"{entry.input_hw[1]}×{entry.input_hw[0]}</span>")
    return (
        f'<figure class="{" ".join(cls)}" data-name="{_e(entry.name)}" '
        f'data-true="{_e(entry.true if entry.true is not None else "")}" '
        f'data-pred="{_e(entry.predicted)}" data-target="{_e(entry.target)}" '
        f'data-score="{entry.score:.6g}">'
        f'<img alt="{_e(entry.name)}" src="data:image/png;base64,{png}" '
        f'width="{disp_hw[1]}" height="{disp_hw[0]}">'
        f"<figcaption>{'<br>'.join(lines)}</figcaption></figure>"
    )


def _confusion_html(labels: list[str], cm: np.ndarray) -> str:
    head = "".join(f'<th scope="col">{_e(c)}</th>' for c in labels)
    rows = []
    for i, t in enumerate(labels):
        cells = []
        for j, p in enumerate(labels):
            k = int(cm[i, j])
            kind = "zero" if k == 0 else ("ok" if i == j else "bad")
            cells.append(f'<td class="{kind}" data-true="{_e(t)}" data-pred="{_e(p)}">{k}</td>')
        rows.append(f'<tr><th scope="row">{_e(t)}</th>{"".join(cells)}</tr>')
    return (
        '<table class="cm" id="confusion"><tr><th>true ↓ / predicted →</th>'
        f"{head}</tr>{''.join(rows)}</table>"
    )


def _sections(
    entries: list[ReportEntry], labelled: bool, order: list[str],
) -> list[tuple[str, list[ReportEntry]]]:
    groups: dict[str, list[ReportEntry]] = {}
    for e in entries:
        groups.setdefault(e.true if labelled else e.predicted, []).append(e)
    out = []
    for c in order + sorted(set(groups) - set(order)):
        if c in groups:
            # Misclassified first, then images with a localisation verdict; each group from
            # the highest score down.
            items = sorted(groups[c], key=lambda e: (not e.misclassified, not e.boxes,
                                                     -e.score, e.name))
            out.append((c, items))
    return out


def build_report(
    model: Any,
    images_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    target: Any = None,
    input_size: Any = "fit",
    boxes: str | os.PathLike | dict | None = None,
    alpha: float = 0.5,
    max_per_class: int | None = 200,
    title: str | None = None,
    notes: Sequence[str] = (),
    verbose: int = 0,
) -> Report:
    """Write ``out/index.html``: model card, confusion matrix and CAM overlays of a folder.

    Parameters
    ----------
    model : GapClassifier
        A fitted model with a linear head.
    images_dir : str or path-like
        A folder with one sub-folder per class (labels: accuracy, confusion matrix,
        misclassified images first) or a flat folder of images (no labels).
    out : str or path-like
        Output folder (created); the page is ``out/index.html``.
    target : label, optional
        Draw this class's map for every image; default each image's predicted class.
    input_size : default="fit"
        Network input size for these images (e.g. None for each image's own size).
    boxes : path or dict, optional
        Ground-truth boxes (:func:`read_boxes_csv`); images with a box labelled as the drawn
        class get a localisation check.
    alpha : float, default=0.5
        Heatmap opacity.
    max_per_class : int or None, default=200
        At most this many overlays per class section (misclassified ones come first, then
        those with a box); the counts and the confusion matrix always cover every image.
    title : str, optional
    notes : sequence of str
        Paragraphs shown under the title (plain text, escaped).
    verbose : int, default=0
        1 or 2 shows a progress bar (as in :class:`GapClassifier`).

    Returns
    -------
    Report

    Raises
    ------
    NotLinearError
        The model's head is not linear, so it has no CAMs.
    ValueError
        Unknown target, bad boxes file, or no image in the folder.
    FileNotFoundError
        ``images_dir`` does not exist.
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model)
    model.head_.cam_weights()  # a non-linear head fails here, before any image is read
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if max_per_class is not None and max_per_class < 1:
        raise ValueError(f"max_per_class must be at least 1 (or None for all), got "
                         f"{max_per_class}")
    target = resolve_target(model.classes_, target)
    size = parse_input_size(model.input_size if input_size == "fit" else input_size)
    box_map = read_boxes_csv(boxes) if isinstance(boxes, str | os.PathLike) else boxes
    entries, errors, class_names = _collect(model, images_dir, target, input_size, box_map,
                                            verbose)
    labelled = class_names is not None
    classes = [str(c) for c in model.classes_]
    labels = classes + sorted({e.true for e in entries if e.true is not None} - set(classes))
    cm = _confusion(entries, labels) if labelled else None
    body: list[str] = []
    body.append(
        '<h2>Class activation maps</h2><p class="muted">Each overlay is the map of one class ('
        + ("the image's predicted class" if target is None else _e(target))
        + "): the head's weight row for that class applied to the feature maps at every "
        "position. Its mean plus the intercept is the score shown under the image. Colours "
        "are scaled per image "
        '(<span class="legend"></span> low → high), so compare where, not how much, between '
        "images."
        + (" Labelled images: misclassified first (red frame), then from the highest score "
           "down." if labelled else " Sorted from the highest score down.")
        + (" Images with a ground-truth box come first (white box; cross: the map's peak)."
           if box_map is not None else "")
        + "</p>"
    )
    for c, items in _sections(entries, labelled, labels):
        n_bad = sum(e.misclassified for e in items)
        head = f"true class {c}" if labelled else f"predicted {c}"
        extra = f", {n_bad} misclassified" if labelled else ""
        body.append(f'<h2 id="class-{_e(c)}">{_e(head)} <span class="muted">({len(items)} '
                     f"images{extra})</span></h2>")
        shown = items if max_per_class is None else items[:max_per_class]
        cards = []
        big = False
        for e in shown:
            try:
                png, disp = _render_overlay(e, alpha)
            except ImageReadError as exc:  # changed or removed since its features were read
                errors.append((e.name, exc.reason))
                continue
            cards.append(_card_html(e, png, disp))
            big |= max(disp) > 300
        # photographs get wider cells than thumbnails, so their maps can be read
        body.append(f'<div class="grid{" photos" if big else ""}">' + "".join(cards) + "</div>")
        if len(shown) < len(items):
            body.append(f'<p class="muted">{len(items) - len(shown)} more not shown '
                         "(--max-per-class).</p>")
    if errors:
        body.append('<h2>Files not used</h2><div class="panel"><ul id="errors">'
                     + "".join(f"<li><code>{_e(p)}</code>: {_e(r)}</li>" for p, r in errors)
                     + "</ul></div>")
    # After the overlays: a file that vanished since its features were read is an error too.
    findings = _findings(entries, errors, labelled, target, box_map)

    title = title or f"gapsvm report: {Path(images_dir).name}"
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{_e(os.path.abspath(images_dir))} · {len(entries)} images · '
        f"{_e(stamp)}</p>",
    ]  # fmt: skip
    parts += [f'<p class="note">{_e(n)}</p>' for n in notes]
    parts.append('<div class="panel"><b>Findings</b><ul class="findings">'
                 + "".join(f"<li>{_e(f)}</li>" for f in findings) + "</ul></div>")
    parts.append('<h2>Model</h2><div class="panel"><table class="card" id="model-card">'
                 + "".join(f'<tr><th>{_e(k)}</th><td data-field="{_e(k)}">{_e(v)}</td></tr>'
                           for k, v in _model_card(model, size, target))
                 + "</table></div>")
    if cm is not None:
        parts.append(f"<h2>Confusion matrix</h2><div class=\"panel\">{_confusion_html(labels, cm)}"
                     "</div>")
    parts += [*body, "</main></body></html>"]

    page = Path(out) / "index.html"
    with atomic_write(page) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return Report(page, entries, errors, labels, cm, findings)
