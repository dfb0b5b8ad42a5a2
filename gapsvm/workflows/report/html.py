"""The page of ``gapsvm report``: one self-contained ``index.html``.

The model card, the findings, the confusion matrix when the folder has one sub-folder per
class, and for each class a grid of CAM overlays (embedded as base64 PNG), misclassified
images first; with ``target="all"``, one row of small overlays per image, one per class.
Overlays are drawn by :func:`gapsvm.core.overlay.draw_overlay`, the one overlay path; what
they show is collected by :mod:`gapsvm.workflows.report.collect`. TensorFlow is not imported
here: a fitted model brings its backbone with it.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gapsvm.core.boxes_csv import Annotation
from gapsvm.core.decode import ImageReadError, read_image
from gapsvm.core.overlay import draw_overlay
from gapsvm.core.sizes import format_size, parse_input_size
from gapsvm.estimator.targets import is_all, resolve_target
from gapsvm.utils.atomic import atomic_write
from gapsvm.workflows.report.collect import (
    BoxLookup,
    Report,
    ReportEntry,
    collect_entries,
    confusion,
    confusion_labels,
    findings,
    read_boxes,
)

__all__ = ["build_report"]


#: Overlays are embedded with their long side in this range: tiny crops are enlarged so the
#: map is visible, big photos shrunk so the page stays a few megabytes.
DISPLAY_MIN = 128


DISPLAY_MAX = 512

#: The long side of each class's overlay in a row of every class's maps (small multiples).
PANEL_MAX = 320


# -- overlays ------------------------------------------------------------------------------
def _display_hw(hw: tuple[int, int], most: int = DISPLAY_MAX) -> tuple[int, int]:
    h, w = hw
    long = max(h, w)
    scale = min(max(long, DISPLAY_MIN), most) / long
    return max(1, round(h * scale)), max(1, round(w * scale))


def _png_base64(rgb: np.ndarray) -> str:
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


def _render_row(entry: ReportEntry, alpha: float) -> tuple[list[str], tuple[int, int]]:
    """Every class's map over the image, one small overlay each, on one colour scale: the
    row's lowest value is dark blue and its highest dark red, so a class with little
    evidence anywhere stays cold beside one with much."""
    img = read_image(entry.path)
    disp = _display_hw(img.shape[:2], PANEL_MAX)
    cams = entry.class_cams
    lo, span = float(cams.min()), float(cams.max() - cams.min())
    pngs = []
    for c, cam in zip(entry.scores, cams, strict=True):
        scaled = (cam - lo) / span if span > 0 else np.zeros_like(cam)
        peak = entry.peak_xy if entry.boxes and c == entry.target else None
        out = draw_overlay(img, scaled, alpha=alpha, normalize=False, display_hw=disp,
                           gt_boxes=entry.class_boxes.get(c, ()), peak_xy=peak)
        pngs.append(_png_base64(out))
    return pngs, disp


# -- HTML pieces ---------------------------------------------------------------------------
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
.grid.rows{grid-template-columns:1fr}.multiples{display:flex;flex-wrap:wrap;gap:8px}
.multiples .cls{flex:0 1 auto;padding:3px;border:2px solid transparent;border-radius:4px}
.multiples .cls.pred{border-color:#1d2330}.multiples img{width:auto;max-width:100%}
.clabel{font-size:12.5px;margin-top:3px}
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
    params = head.get_params(deep=False)
    rows = [
        ("backbone", f"{meta.get('backbone')}, cut at {meta.get('layer')} "
                     f"(stride {meta.get('stride')})"),
        ("weights", f"{meta['weights'].get('name')} (sha256 {meta['weights'].get('sha256')})"),
        ("precision", str(meta.get("precision"))),
        ("input size (training)", str(meta.get("input_size"))),
        ("input size (this report)", format_size(input_size)),
        ("head", _head_name(head)),
        ("head parameters", ", ".join(f"{k}={v!r}" for k, v in sorted(params.items()))),
        ("classes", ", ".join(str(c) for c in model.classes_)),
        ("map drawn", "each image's predicted class" if target is None else
         "every class, one row per image" if is_all(target) else str(target)),
    ]  # fmt: skip
    return rows + _training_rows(getattr(model, "training_info_", None) or {}) + [
        ("gapsvm version (model)", str(meta.get("gapsvm_version")))
    ]


def _head_name(head: Any) -> str:
    """The head's class as a user names it (``LinearSVC``), a pipeline by its steps."""
    steps = getattr(head, "steps", None)
    if isinstance(steps, list) and steps:
        return "Pipeline(" + ", ".join(type(s).__qualname__ for _, s in steps) + ")"
    return type(head).__qualname__


def _training_rows(info: dict) -> list[tuple[str, str]]:
    """What training recorded: cross-validated accuracy, the training set, box supervision
    and mined hard negatives."""
    if "cv_accuracy_mean" in info:
        folds = ", ".join(f"{s:.3f}" for s in info.get("cv_scores", []))
        rows = [("cross-validated accuracy",
                 f"{info['cv_accuracy_mean']:.4f} ± {info.get('cv_accuracy_std', 0.0):.4f} "
                 f"({info.get('cv_folds')}-fold; folds {folds})")]
    else:
        rows = [("cross-validated accuracy",
                 "not recorded (the model was not trained with `gapsvm train`, or with --cv 0)")]
    if "supervision" in info:
        rows.append(("supervision", f"{info['supervision']}: {info.get('n_photos')} photo(s), "
                     f"{info.get('n_positives')} box crop(s), {info.get('n_negatives')} "
                     "negative crop(s)"))
    elif "n_images" in info:
        src = info.get("features_file")
        rows.append(("training images", f"{info['n_images']}" + (f" (from {src})" if src else "")))
    mined = info.get("hard_negatives")
    if mined:
        rows.append(("hard negatives", f"{mined.get('n_added')} window(s) mined in "
                     f"{mined.get('rounds_run')} round(s) from {mined.get('n_images')} image(s) "
                     f"of {mined.get('source')} at scales {mined.get('scales')}"))
    return rows


def _localisation_lines(entry: ReportEntry) -> list[str]:
    where = f"x={entry.peak_xy[0]}, y={entry.peak_xy[1]}"
    lines = [
        ('<span class="tag ok">peak in box</span>' if entry.hit
         else '<span class="tag">peak outside box</span>')
        + f' <span class="muted">peak at {where}</span>'
    ]
    if entry.energy is not None:
        lines.append(f"{100 * entry.energy:.0f}% of positive map mass in a box covering "
                     f"{100 * entry.box_share:.1f}% of the image")
    else:
        lines.append(f"no positive evidence for {_e(entry.target)} anywhere in the image")
    return lines


def _row_html(entry: ReportEntry, pngs: list[str], disp_hw: tuple[int, int]) -> str:
    """The small multiples: each class's overlay labelled with the class and its score."""
    cells = []
    for (c, score), png in zip(entry.scores.items(), pngs, strict=True):
        tags = ('<span class="tag info">predicted</span>' if c == entry.predicted else "") + (
            '<span class="tag ok">true</span>' if c == entry.true else "")
        cells.append(
            f'<div class="cls{" pred" if c == entry.predicted else ""}" data-class="{_e(c)}" '
            f'data-score="{score:.6g}"><img alt="{_e(entry.name)}: map of {_e(c)}" '
            f'src="data:image/png;base64,{png}" width="{disp_hw[1]}" height="{disp_hw[0]}">'
            f'<div class="clabel"><b>{_e(c)}</b> {score:+.3f} {tags}</div></div>')
    return f'<div class="multiples">{"".join(cells)}</div>'


def _card_html(entry: ReportEntry, png: str | list[str], disp_hw: tuple[int, int]) -> str:
    lines = [f'<span class="name">{_e(entry.name)}</span>']
    if entry.true is not None:
        tag = ('<span class="tag">misclassified</span>' if entry.misclassified
               else '<span class="tag ok">correct</span>')
        lines.append(f"{tag} true: <b>{_e(entry.true)}</b> · predicted: "
                     f"<b>{_e(entry.predicted)}</b>")
    else:
        lines.append(f"predicted: <b>{_e(entry.predicted)}</b>")
    if entry.trained_on:
        lines.append('<span class="tag info">training image</span>')
    if entry.class_cams is None:
        lines.append(f"{_e(entry.target)} score: <b>{entry.score:+.3f}</b>")
    if entry.boxes:
        found = _localisation_lines(entry)
        if entry.class_cams is not None:  # a row of maps: say which one the check is about
            found[0] = f"map of {_e(entry.target)}: {found[0]}"
        lines += found
    lines.append(f'<span class="muted">{entry.image_hw[1]}×{entry.image_hw[0]} px, network '
                 f"{entry.input_hw[1]}×{entry.input_hw[0]}</span>")
    if isinstance(png, list):
        shown = _row_html(entry, png, disp_hw)
    else:
        shown = (f'<img alt="{_e(entry.name)}" src="data:image/png;base64,{png}" '
                 f'width="{disp_hw[1]}" height="{disp_hw[0]}">')
    return (
        f'<figure class="{"miss" if entry.misclassified else ""}" data-name="{_e(entry.name)}" '
        f'data-true="{_e(entry.true if entry.true is not None else "")}" '
        f'data-pred="{_e(entry.predicted)}" data-target="{_e(entry.target)}" '
        f'data-score="{entry.score:.6g}">{shown}'
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


def _maps_intro(target: Any, labelled: bool, with_boxes: bool) -> str:
    if is_all(target):
        return (
            '<h2>Class activation maps</h2><p class="muted">Each row shows the map of every '
            "class over one image, labelled with the class and its score (the map's mean plus "
            "the intercept): where the evidence for each class lies, from one pass of the "
            "network. The colours of a row share one scale "
            '(<span class="legend"></span> low → high): a class with little evidence stays '
            "cold beside one with much; compare where, not how much, between rows."
            + (" Misclassified images first (red frame), then from the predicted class's "
               "highest score down." if labelled else " Sorted from the highest score down.")
            + (" White boxes: the ground truth of the class under them; cross: the peak of "
               "the predicted class's map (framed), which the localisation check under the "
               "row is about." if with_boxes else "")
            + "</p>"
        )
    return (
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
           if with_boxes else "")
        + "</p>"
    )


# -- class sections ------------------------------------------------------------------------
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


def _section_html(
    c: str, items: list[ReportEntry], labelled: bool, alpha: float,
    max_per_class: int | None, errors: list[tuple[str, str]],
) -> list[str]:
    """One class's heading and grid of overlays; a file that cannot be read any more (changed
    or removed since its features were read) is added to ``errors``."""
    n_bad = sum(e.misclassified for e in items)
    head = f"true class {c}" if labelled else f"predicted {c}"
    extra = f", {n_bad} misclassified" if labelled else ""
    out = [f'<h2 id="class-{_e(c)}">{_e(head)} <span class="muted">({len(items)} '
           f"images{extra})</span></h2>"]
    shown = items if max_per_class is None else items[:max_per_class]
    cards = []
    big = False
    rows = any(e.class_cams is not None for e in shown)
    for e in shown:
        try:
            png, disp = _render_row(e, alpha) if rows else _render_overlay(e, alpha)
        except ImageReadError as exc:
            errors.append((e.name, exc.reason))
            continue
        cards.append(_card_html(e, png, disp))
        big |= max(disp) > 300
    # photographs get wider cells than thumbnails, so their maps can be read; a row of
    # every class's maps takes the page's width
    kind = " rows" if rows else " photos" if big else ""
    out.append(f'<div class="grid{kind}">' + "".join(cards) + "</div>")
    if len(shown) < len(items):
        out.append(f'<p class="muted">{len(items) - len(shown)} more not shown '
                   "(--max-per-class).</p>")
    return out


def _errors_html(errors: list[tuple[str, str]]) -> list[str]:
    if not errors:
        return []
    return ['<h2>Files not used</h2><div class="panel"><ul id="errors">'
            + "".join(f"<li><code>{_e(p)}</code>: {_e(r)}</li>" for p, r in errors)
            + "</ul></div>"]


def _head_html(
    title: str, images_dir: str | os.PathLike, n_images: int, notes: Sequence[str],
    found: list[str], card: list[tuple[str, str]],
) -> list[str]:
    """Everything above the overlays: title, notes, findings and the model card."""
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{_e(os.path.abspath(images_dir))} · {n_images} images · '
        f"{_e(stamp)}</p>",
    ]  # fmt: skip
    parts += [f'<p class="note">{_e(n)}</p>' for n in notes]
    parts.append('<div class="panel"><b>Findings</b><ul class="findings">'
                 + "".join(f"<li>{_e(f)}</li>" for f in found) + "</ul></div>")
    parts.append('<h2>Model</h2><div class="panel"><table class="card" id="model-card">'
                 + "".join(f'<tr><th>{_e(k)}</th><td data-field="{_e(k)}">{_e(v)}</td></tr>'
                           for k, v in card)
                 + "</table></div>")
    return parts


def _check_args(model: Any, alpha: float, max_per_class: int | None) -> None:
    """Fail before any image is read: an unfitted model, a head without CAMs, bad settings."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model)
    model.head_.cam_weights()  # a non-linear head fails here
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if max_per_class is not None and (isinstance(max_per_class, bool) or max_per_class < 1):
        raise ValueError(f"max_per_class must be a positive number of overlays, or None for "
                         f"every image; got {max_per_class!r}")


def build_report(
    model: Any,
    images_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    target: Any = None,
    input_size: Any = "fit",
    boxes: str | os.PathLike | Iterable[Annotation] | BoxLookup | None = None,
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
    target : label or "all", optional
        Draw this class's map for every image; default each image's predicted class;
        ``"all"``: a row of every class's maps per image (small multiples), the predicted
        class's framed (its map is the one the localisation check uses).
    input_size : default="fit"
        Network input size for these images (e.g. None for each image's own size).
    boxes : path, list of Annotation or dict, optional
        Ground-truth boxes: a CSV ``filename,label,x_min,y_min,x_max,y_max`` (exclusive
        maxima, file names relative to ``images_dir``), read strictly by
        :func:`gapsvm.core.boxes_csv.read_boxes_csv`, or what that function returned.
        Images with a box labelled as the drawn class get a localisation check.
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
    BoxesCSVError
        The boxes CSV is invalid; every problem is listed with its line, before any image
        is run (a ValueError).
    ValueError
        Unknown target or no image in the folder.
    FileNotFoundError
        ``images_dir`` does not exist.
    """
    _check_args(model, alpha, max_per_class)
    target = resolve_target(model.classes_, target, allow_all=True)
    size = parse_input_size(model.input_size if input_size == "fit" else input_size)
    box_map = read_boxes(boxes, images_dir, model.classes_)
    entries, errors, labelled = collect_entries(model, images_dir, target, input_size,
                                                box_map, verbose)
    labels = confusion_labels(model.classes_, entries)
    cm = confusion(entries, labels) if labelled else None
    body = [_maps_intro(target, labelled, box_map is not None)]
    for c, items in _sections(entries, labelled, labels):
        body += _section_html(c, items, labelled, alpha, max_per_class, errors)
    body += _errors_html(errors)
    # After the overlays: a file that vanished since its features were read is an error too.
    found = findings(entries, errors, labelled, target, box_map)
    title = title or f"gapsvm report: {Path(images_dir).name}"
    parts = _head_html(title, images_dir, len(entries), notes, found,
                       _model_card(model, size, target))
    if cm is not None:
        parts.append(f"<h2>Confusion matrix</h2><div class=\"panel\">{_confusion_html(labels, cm)}"
                     "</div>")
    parts += [*body, "</main></body></html>"]
    page = Path(out) / "index.html"
    with atomic_write(page) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return Report(page, entries, errors, labels, cm, found)
