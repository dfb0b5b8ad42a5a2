"""Shared by the ``gapsvm report`` tests: a model trained through the CLI on tiny synthetic
red/blue images, the folders it is reported on, and a parser of the written page.

A seeded random VGG16 (``weights=None``) keeps this fast: the report's plumbing is the point,
not ImageNet behaviour (tests/test_demo.py covers that).
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from gapsvm import cli
from gapsvm.workflows.report import build_report

NASTY = "<img src=x onerror=alert(1)>&\"'.png"
RED, BLUE = (210, 40, 40), (40, 40, 210)
BOXES_HEADER = ["filename", "label", "x_min", "y_min", "x_max", "y_max"]


def write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(buf.tobytes())


def colour(rng: np.random.Generator, rgb: tuple[int, int, int], size=(32, 32)) -> np.ndarray:
    noise = rng.integers(-30, 31, size=(*size, 3))
    return np.clip(np.asarray(rgb) + noise, 0, 255).astype(np.uint8)


class Page(HTMLParser):
    """Collects the elements the tests read: cards, confusion cells, model card, sections,
    and with every class drawn (``target="all"``) each card's class panels and their labels.
    Each image and panel records the index of the card it belongs to (``card``)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.cards: list[dict] = []
        self.cells: dict[tuple[str, str], str] = {}
        self.fields: dict[str, str] = {}
        self.imgs: list[dict] = []
        self.panels: list[dict] = []
        self._panel_depth = 0  # open divs of the current class panel
        self.errors: list[str] = []
        self.section: str | None = None
        self._cell: tuple | None = None
        self._field: str | None = None
        self._in_errors = False
        self._li: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "h2" and (a.get("id") or "").startswith("class-"):
            self.section = a["id"][len("class-"):]
        elif tag == "figure":
            self.cards.append({**a, "section": self.section})
        elif tag == "img":
            self.imgs.append({**a, "card": len(self.cards) - 1})
        elif tag == "div" and self._panel_depth:
            self._panel_depth += 1
        elif tag == "div" and "data-class" in a:
            self.panels.append({**a, "card": len(self.cards) - 1, "label": ""})
            self._panel_depth = 1
        elif tag == "td" and "data-pred" in a:
            self._cell = (a["data-true"], a["data-pred"])
            self.cells[self._cell] = ""
        elif tag == "td" and "data-field" in a:
            self._field = a["data-field"]
            self.fields[self._field] = ""
        elif tag == "ul" and a.get("id") == "errors":
            self._in_errors = True
        elif tag == "li" and self._in_errors:
            self._li = []

    def handle_endtag(self, tag):
        if tag == "div" and self._panel_depth:
            self._panel_depth -= 1
        if tag == "td":
            self._cell = self._field = None
        elif tag == "li" and self._li is not None:
            self.errors.append("".join(self._li))
            self._li = None
        elif tag == "ul":
            self._in_errors = False

    def handle_data(self, data):
        if self._panel_depth:
            self.panels[-1]["label"] += data
        if self._cell is not None:
            self.cells[self._cell] += data
        if self._field is not None:
            self.fields[self._field] += data
        if self._li is not None:
            self._li.append(data)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained through the CLI (features -> train), as a user would."""
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(3)
    for i in range(8):
        write_png(root / "train" / "red" / f"r{i}.png", colour(rng, RED))
        write_png(root / "train" / "blue" / f"b{i}.png", colour(rng, BLUE))
    cache = root / "cache"
    feats, model = root / "f.joblib", root / "m.skops"
    assert cli.main(["features", str(root / "train"), "--input-size", "32x32", "--weights",
                     "none", "--cache-dir", str(cache), "--out", str(feats), "-q"]) == 0
    assert cli.main(["train", str(feats), "--C", "0.5", "--cv", "3", "--out", str(model)]) == 0
    from gapsvm import load_model

    clf = load_model(model).set_params(cache_dir=cache)
    # Labelled folder: each class holds images of the other colour (misclassified by any
    # sensible model), one of them with a name full of HTML; plus an unreadable file.
    lab = root / "labelled"
    for i in range(4):
        write_png(lab / "red" / f"red{i}.png", colour(rng, RED))
        write_png(lab / "blue" / f"blue{i}.png", colour(rng, BLUE, size=(40, 48)))
    write_png(lab / "red" / "looks_blue.png", colour(rng, BLUE))
    write_png(lab / "red" / "looks_blue_too.png", colour(rng, BLUE))  # asymmetric errors
    write_png(lab / "blue" / NASTY, colour(rng, RED))
    (lab / "red" / "broken.png").write_bytes(b"not a png at all")
    flat = root / "flat"
    for i in range(3):
        write_png(flat / f"p{i}.png", colour(rng, RED if i < 2 else BLUE))
    return {"root": root, "model_path": model, "model": clf, "cache": cache, "labelled": lab,
            "flat": flat}


@pytest.fixture(scope="module")
def labelled_report(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("labelled_out")
    rep = build_report(trained["model"], trained["labelled"], out)
    return rep, Page(rep.path.read_text(encoding="utf-8"))


def readable(folder: Path) -> tuple[list[str], list[str]]:
    """The images of ``folder`` a report can use, and their class folder names."""
    paths = sorted(str(p) for p in folder.rglob("*.png") if p.name != "broken.png")
    return paths, [Path(p).parent.name for p in paths]
