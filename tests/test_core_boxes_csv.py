"""Tests for gapsvm.core.boxes_csv: the one strict reader of ground-truth boxes CSVs, shared
by ``gapsvm evaluate`` and ``gapsvm report --boxes``. Those commands' handling of the CSV
(errors before any image runs, a byte-order mark end to end) is tested with them, in
test_workflows_evaluate_run.py and test_workflows_report_collect.py.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from _evaluate import HEADER
from _helpers import write_rgb
from _report import RED, colour, write_png

from gapsvm.core.boxes import Box
from gapsvm.core.boxes_csv import CSV_COLUMNS, BoxesCSVError, read_boxes_csv

# ------------------------------------------------------------------ moved from the workflows
# (These tests came from test_workflows_evaluate_run.py, earlier the flat test_evaluate.py.)


@pytest.fixture
def tiny_images(tmp_path) -> Path:
    d = tmp_path / "imgs"
    write_rgb(d / "a.png", np.zeros((40, 60, 3), np.uint8))
    write_rgb(d / "sub" / "b.png", np.full((50, 30, 3), 200, np.uint8))
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


def test_a_repeated_box_is_reported_with_both_lines(tmp_path, tiny_images) -> None:
    # Before: the copy counted as a second box of the same object, and box recall halved.
    f = tmp_path / "dup.csv"
    f.write_text(
        HEADER
        + "a.png,person,0,0,10,10\n"  # 2
        + "a.png,person,20,1,30,2\n"  # 3
        + "a.png,person,0,0,10,10\n"  # 4: same as 2
        + "a.png,dog,0,0,10,10\n"  # 5: another class may share the box
        + "./a.png,person,0.0,0,10,10.0\n"  # 6: same as 2, spelled differently
        + "sub/b.png,person,1,2,3,4\n"  # 7
        + "sub/b.png,person,1,2,3,4\n"  # 8: same as 7
    )
    with pytest.raises(BoxesCSVError) as info:
        read_boxes_csv(f, tiny_images)
    assert [line for line, _ in info.value.problems] == [4, 6, 8]
    msg = str(info.value)
    assert f"{f}:4: duplicate of line 2" in msg and f"{f}:8: duplicate of line 7" in msg
    assert "(0, 0, 10, 10) of 'person' in 'a.png'" in msg and "delete the repeated row" in msg
    f.write_text(HEADER + "a.png,person,0,0,10,10\n./a.png,person,20,1,30,2\n"
                 "a.png,dog,0,0,10,10\n")
    anns = read_boxes_csv(f, tiny_images)  # one image however it is spelled
    assert [(a.label, a.boxes, a.lines) for a in anns] == [
        ("person", [Box(0, 0, 10, 10), Box(20, 1, 30, 2)], [2, 3]),
        ("dog", [Box(0, 0, 10, 10)], [4]),
    ]


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


# (This one came from test_workflows_report_collect.py.)
def test_bad_boxes_file_names_file_and_line(tmp_path):
    images = tmp_path / "images"
    for name in ("a.png", "b.png"):
        write_png(images / name, colour(np.random.default_rng(0), RED, size=(16, 16)))
    p = tmp_path / "b.csv"
    p.write_text("filename,label,x_min,y_min,x_max,y_max\na.png,x,0,0,10,10\nb.png,x,5,5,2,9\n")
    with pytest.raises(ValueError, match=r"b\.csv:3: .*empty or inverted") as err:
        read_boxes_csv(p, images)
    assert [line for line, _ in err.value.problems] == [3]
    p.write_text("filename,label,x_min,y_min,x_max,y_max\na.png,x,0.5,0,10,10\n")
    with pytest.raises(ValueError, match=r"b\.csv:2: x_min 0\.5 is not a whole pixel"):
        read_boxes_csv(p, images)  # half pixels: another convention
    p.write_text("filename,x_min\n")
    with pytest.raises(ValueError, match="missing column"):
        read_boxes_csv(p, images)


# ------------------------------------------------------------------ header


def test_a_byte_order_mark_before_the_header_is_accepted(tmp_path, tiny_images) -> None:
    """Spreadsheets save "CSV UTF-8" with a BOM, which would otherwise rename the first
    column to "\\ufefffilename"."""
    rows = HEADER + "a.png,person,0,0,10,10\nsub/b.png,person,1,2,3,4\n"
    plain, bom = tmp_path / "plain.csv", tmp_path / "bom.csv"
    plain.write_text(rows, encoding="utf-8")
    bom.write_text(rows, encoding="utf-8-sig")
    assert bom.read_bytes().startswith(b"\xef\xbb\xbf")
    assert read_boxes_csv(bom, tiny_images) == read_boxes_csv(plain, tiny_images)
    assert [a.filename for a in read_boxes_csv(bom, tiny_images)] == ["a.png", "sub/b.png"]


def test_header_names_must_be_exact_but_may_be_padded(tmp_path, tiny_images) -> None:
    f = tmp_path / "h.csv"
    f.write_text("Filename,label,x_min,y_min,x_max,y_max\na.png,person,0,0,1,1\n")
    with pytest.raises(BoxesCSVError) as info:
        read_boxes_csv(f, tiny_images)
    assert info.value.problems == [
        (1, f"missing column(s) ['filename']; the header must have {list(CSV_COLUMNS)}")
    ]
    # Spaces after the commas, as some tools write them, in the header and in the rows.
    f.write_text("filename, label, x_min, y_min, x_max, y_max\n a.png , person , 0, 0, 10, 10\n")
    (ann,) = read_boxes_csv(f, tiny_images)
    assert (ann.filename, ann.label, ann.boxes) == ("a.png", "person", [Box(0, 0, 10, 10)])


# ------------------------------------------------------------------ rows and their problems


def test_one_problem_is_one_line_naming_file_line_and_reason(tmp_path, tiny_images) -> None:
    f = tmp_path / "one.csv"
    f.write_text(HEADER + "a.png,person,0,0,10,10\na.png,person,0,0,inf,10\n")
    with pytest.raises(BoxesCSVError) as info:
        read_boxes_csv(f, tiny_images)
    assert str(info.value) == f"{f}:3: x_max 'inf' is not a finite number"
    assert info.value.path == str(f) and info.value.problems == [
        (3, "x_max 'inf' is not a finite number")
    ]


def test_line_numbers_are_the_files_own_lines(tmp_path, tiny_images) -> None:
    # Blank lines and a quoted field over two lines: an editor's line numbers, not row counts.
    f = tmp_path / "lines.csv"
    f.write_text(HEADER + "\n" + 'a.png,"per\nson",0,0,10,10\n' + "\n" + "a.png,dog,9,9,1,1\n")
    with pytest.raises(BoxesCSVError) as info:
        read_boxes_csv(f, tiny_images)
    assert [line for line, _ in info.value.problems] == [6]


def test_many_problems_are_counted_and_the_list_is_cut(tmp_path, tiny_images) -> None:
    f = tmp_path / "many.csv"
    f.write_text(HEADER + "a.png,person,5,5,5,5\n" * 25)
    with pytest.raises(BoxesCSVError) as info:
        read_boxes_csv(f, tiny_images)
    err = info.value
    assert [line for line, _ in err.problems] == list(range(2, 27))  # all of them kept
    lines = str(err).splitlines()
    assert lines[0] == "25 problems in the CSV:"
    assert lines[1].startswith(f"{f}:2: box (5, 5, 5, 5) is empty or inverted")
    assert lines[20].startswith(f"{f}:21: ") and lines[21] == "... and 5 more problem(s)"
    assert len(lines) == 22


def test_a_missing_or_unreadable_image_is_reported_on_its_first_line_only(
    tmp_path, tiny_images
) -> None:
    f = tmp_path / "missing.csv"
    f.write_text(
        HEADER
        + "gone.png,person,0,0,1,1\n"  # 2
        + "a.png,person,0,0,1,1\n"  # 3: fine
        + "gone.png,person,0,0,2,2\n"  # 4: the same missing file: said once, on line 2
        + "broken.png,person,0,0,1,1\n"  # 5
        + "broken.png,person,0,0,1,1\n"  # 6
        + "gone.png,person,0,0,a,2\n"  # 7: a problem of its own is still reported
    )
    with pytest.raises(BoxesCSVError) as info:
        read_boxes_csv(f, tiny_images)
    problems = dict(info.value.problems)
    assert sorted(problems) == [2, 5, 7]
    assert problems[2] == f"unknown file 'gone.png': not found in {tiny_images}"
    assert problems[5].startswith("image 'broken.png' cannot be read: ")
    assert problems[7] == "x_max 'a' is not a number"


def test_names_are_resolved_against_the_images_folder_not_the_working_folder(
    tmp_path, tiny_images, monkeypatch
) -> None:
    # The working folder holds another a.png, of another size: it must not be the one read.
    elsewhere = tmp_path / "cwd"
    write_rgb(elsewhere / "a.png", np.zeros((8, 8, 3), np.uint8))
    monkeypatch.chdir(elsewhere)
    f = tmp_path / "boxes.csv"
    f.write_text(HEADER + "a.png,person,0,0,60,40\n./sub/b.png,person,0,0,30,50\n")
    a, b = read_boxes_csv(f, tiny_images)
    assert Path(a.path) == tiny_images / "a.png" and a.image_hw == (40, 60)
    assert Path(b.path) == tiny_images / "sub" / "b.png" and b.image_hw == (50, 30)
    # A relative images folder is taken from the working folder, as any path argument is.
    write_rgb(elsewhere / "imgs" / "a.png", np.zeros((60, 60, 3), np.uint8))
    g = tmp_path / "rel.csv"
    g.write_text(HEADER + "a.png,person,0,0,60,60\n")
    (c,) = read_boxes_csv(g, "imgs")
    assert Path(c.path) == Path("imgs", "a.png") and c.image_hw == (60, 60)


@pytest.mark.parametrize("name", ["/etc/passwd", "sub/../a.png", "../imgs/a.png"])
def test_names_may_not_leave_the_images_folder(tmp_path, tiny_images, name) -> None:
    f = tmp_path / "out.csv"
    f.write_text(HEADER + f"{name},person,0,0,1,1\n")
    with pytest.raises(BoxesCSVError) as info:
        read_boxes_csv(f, tiny_images)
    assert info.value.problems == [
        (2, f"filename {name!r} must be relative to the images folder")
    ]


def test_image_sizes_are_those_of_the_decoded_image(tmp_path, corpus) -> None:
    # EXIF orientation 6: stored 40 high and 56 wide, shown (and read) 56 high and 40 wide.
    f = tmp_path / "exif.csv"
    f.write_text(HEADER + "person/exif6.jpg,person,0,0,40,56\n")
    (ann,) = read_boxes_csv(f, corpus.data)
    assert ann.image_hw == (56, 40)
    f.write_text(HEADER + "person/exif6.jpg,person,0,0,56,40\n")
    with pytest.raises(BoxesCSVError, match="outside the 40x56 image"):
        read_boxes_csv(f, corpus.data)


def test_labels_are_compared_with_the_classes_as_text(tmp_path, tiny_images) -> None:
    f = tmp_path / "digits.csv"
    f.write_text(HEADER + "a.png,1,0,0,1,1\n")
    (ann,) = read_boxes_csv(f, tiny_images, classes=np.array([0, 1]))
    assert ann.label == "1"
    with pytest.raises(BoxesCSVError, match="label '1' is not a class of the model"):
        read_boxes_csv(f, tiny_images, classes=["0", "2"])


def test_a_missing_csv_is_file_not_found(tmp_path, tiny_images) -> None:
    with pytest.raises(FileNotFoundError):
        read_boxes_csv(tmp_path / "nope.csv", tiny_images)


def test_the_error_survives_a_trip_to_another_process(tmp_path) -> None:
    # Pickled as worker processes and pools return it: same message and problems.
    err = BoxesCSVError(tmp_path / "x.csv", [(2, "label is empty"), (4, "x_min is missing")])
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is BoxesCSVError and isinstance(back, ValueError)
    assert (str(back), back.path, back.problems) == (str(err), err.path, err.problems)
