"""``gapsvm report`` (gapsvm/cli/report.py): the command's flags reach the page, what it
prints, and its exit status. The page itself is test_workflows_report_html.py, what it says
about a folder test_workflows_report_collect.py (with ``--boxes`` from a spreadsheet's CSV)."""

from __future__ import annotations

import _report
import numpy as np
import pytest
from _helpers import run_cli, run_cli_fresh
from _report import RED, Page, colour, readable, write_png

from gapsvm import cli

trained = _report.trained  # shared fixture

pytestmark = pytest.mark.slow


def _argv(trained, images, out) -> list:
    return ["report", trained["model_path"], images, "--out", out, "--cache-dir",
            trained["cache"], "-q"]


# (This one came from test_workflows_report_html.py.)
def test_cli_report(trained, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["report", str(trained["model_path"]), str(trained["labelled"]), "--out", str(out),
            "--cache-dir", str(trained["cache"]), "-q", "--title", "My <b>title</b>",
            "--note", "a & b"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr()
    assert f"report -> {out / 'index.html'}" in printed.out
    assert "Accuracy on this folder" in printed.out
    assert "red/broken.png" in printed.err
    text = (out / "index.html").read_text(encoding="utf-8")
    assert "<title>My &lt;b&gt;title&lt;/b&gt;</title>" in text and "a &amp; b" in text
    assert cli.main([*argv, "--strict"]) == 1  # an unreadable file fails a strict run


def test_notes_and_max_per_class_reach_the_page(trained, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("First <paragraph>\nstill the first.\n\n\n  Second one.  \n\n",
                     encoding="utf-8")
    out = tmp_path / "all"
    rc, _, err = run_cli(capsys, *_argv(trained, trained["labelled"], out), "--note", "typed",
                         "--notes", notes, "--max-per-class", "0")
    assert rc == 0, err
    text = (out / "index.html").read_text(encoding="utf-8")
    # --note first, then the file's blank-line separated paragraphs, escaped.
    paragraphs = ['<p class="note">typed</p>',
                  '<p class="note">First &lt;paragraph&gt;\nstill the first.</p>',
                  '<p class="note">Second one.</p>']
    positions = [text.index(p) for p in paragraphs]
    assert positions == sorted(positions)
    # 0 shows every image; 1 keeps one per class.
    paths, _ = readable(trained["labelled"])
    assert len(Page(text).cards) == len(paths)
    one = tmp_path / "one"
    rc, _, err = run_cli(capsys, *_argv(trained, trained["labelled"], one), "--max-per-class",
                         "1")
    assert rc == 0, err
    sections = [c["section"] for c in Page((one / "index.html").read_text("utf-8")).cards]
    assert sorted(sections) == ["blue", "red"]


def test_a_missing_notes_file_fails_before_anything_is_written(trained, tmp_path, capsys):
    out = tmp_path / "out"
    rc, _, err = run_cli(capsys, *_argv(trained, trained["flat"], out), "--notes",
                         tmp_path / "nope.txt")
    assert rc == 1
    assert err.startswith("gapsvm report: error: ") and "nope.txt" in err
    assert not out.exists()


def test_a_folder_with_nothing_readable_fails_even_without_strict(trained, tmp_path, capsys):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not a png")
    rc, printed, err = run_cli(capsys, *_argv(trained, folder, tmp_path / "out"))
    assert rc == 1
    assert "a.png: " in err
    assert f"report -> {tmp_path / 'out' / 'index.html'}" in printed  # the errors are on it
    # One readable image is enough without --strict; with it, the bad one fails the run.
    write_png(folder / "b.png", colour(np.random.default_rng(0), RED))
    rc, _, err = run_cli(capsys, *_argv(trained, folder, tmp_path / "out2"))
    assert rc == 0 and "a.png: " in err
    rc, _, _ = run_cli(capsys, *_argv(trained, folder, tmp_path / "out3"), "--strict")
    assert rc == 1



def test_a_report_the_cache_serves_never_loads_tensorflow(trained, tmp_path):
    # The fixture's `features` run built the network, recording its weights' identity, and
    # cached every training image with its maps: the report needs neither the network nor
    # TensorFlow, which would cost seconds of start-up.
    out = tmp_path / "cached"
    rc, printed, tensorflow = run_cli_fresh(*_argv(trained, trained["root"] / "train", out))
    assert (rc, tensorflow) == (0, False), printed
    assert len(Page((out / "index.html").read_text("utf-8")).cards) == 16


def test_target_all_draws_every_class_for_each_image(trained, tmp_path, capsys):
    out = tmp_path / "every"
    rc, _, err = run_cli(capsys, *_argv(trained, trained["flat"], out), "--target", "all")
    assert rc == 0, err
    page = Page((out / "index.html").read_text(encoding="utf-8"))
    paths, _ = readable(trained["flat"])
    assert len(page.cards) == len(paths) and len(page.panels) == 2 * len(paths)
    assert page.fields["map drawn"] == "every class, one row per image"


def test_report_says_what_it_covers_before_loading_the_model(trained, tmp_path, capsys):
    from gapsvm.core.scan import load_directory

    argv = [str(a) for a in ("report", trained["model_path"], trained["labelled"], "--out",
                             tmp_path / "o", "--cache-dir", trained["cache"])]
    assert cli.main(argv) == 0
    first = capsys.readouterr().err.splitlines()[0]
    paths, _, names = load_directory(trained["labelled"])
    assert first == (f"report: {len(paths)} image(s) in {trained['labelled']} "
                     f"({len(names)} classes); loading {trained['model_path']}")
    assert cli.main([*argv, "-q"]) == 0
    assert "loading" not in capsys.readouterr().err
    # A folder without images fails before the model (and scikit-learn) is loaded.
    rc, _, sklearn = run_cli_fresh("report", trained["model_path"], tmp_path / "missing",
                                   "--out", tmp_path / "o2", module="sklearn")
    assert (rc, sklearn) == (1, False)
