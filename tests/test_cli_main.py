"""The ``gapsvm`` entry point (gapsvm/cli/main.py, gapsvm/cli/app.py): every command and flag
of the command line, the console script, ``python -m gapsvm.cli``, usage errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import fresh_python, run_cli

from gapsvm import cli
from gapsvm.cli import _common
from gapsvm.cli.main import build_parser

#: Every command and its arguments as gapsvm 0.1 spelled them: none may go away.
FLAGS = {
    "weights": {"{install,info,verify}", "--backbone", "--force"},
    "features": {"data_dir", "--out", "--input-size", "--precision", "--weights", "--backbone",
                 "--cache-dir", "--batch-size", "--quiet", "-q", "--strict", "--errors",
                 "--no-maps", "--scheduler", "--workers", "--chunk-size"},
    "train": {"features", "--classifier", "--C", "--cv", "--seed", "--weights", "--out",
              "--hard-negatives", "--mining-rounds", "--mining-scales", "--mining-per-image",
              "--target", "--from-boxes", "--images", "--input-size", "--negatives-per-image",
              "--cache-dir"},
    "predict": {"model", "images", "--trusted", "--input-size", "--precision", "--cache-dir",
                "--batch-size", "--quiet", "-q", "--strict", "--csv"},
    "cam": {"model", "images", "--trusted", "--input-size", "--precision", "--cache-dir",
            "--batch-size", "--quiet", "-q", "--strict", "--target", "--out", "--alpha",
            "--save-npy", "--boxes"},
    "detect": {"model", "images", "--trusted", "--input-size", "--precision", "--cache-dir",
               "--batch-size", "--quiet", "-q", "--strict", "--target", "--out", "--alpha",
               "--scales", "--window", "--stride", "--nms-iou", "--score-threshold",
               "--max-detections"},
    "report": {"model", "images_dir", "--out", "--trusted", "--input-size", "--precision",
               "--cache-dir", "--batch-size", "--quiet", "-q", "--strict", "--target",
               "--boxes", "--alpha", "--max-per-class", "--title", "--note", "--notes"},
    "demo": {"--out", "--n-per-class", "--weights", "--cache-dir", "--train-size",
             "--photo-size", "--quiet", "-q"},
    "evaluate": {"model", "boxes_csv", "--images", "--out", "--scale", "--scales", "--mode",
                 "--threshold", "--faithfulness", "--steps", "--image-steps", "--seed",
                 "--inclusive-max", "--alpha", "--trusted", "--cache-dir", "--quiet", "-q",
                 "--calibrate", "--calibration-images", "--calibrate-scales", "--save-model",
                 "--detect", "--detect-scales", "--window", "--stride", "--nms-iou",
                 "--score-threshold", "--max-detections"},
}


def _help(capsys, command: str) -> set[str]:
    """The words of ``gapsvm COMMAND --help``."""
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    return set(re.findall(r"[-\w{},]+", capsys.readouterr().out))


@pytest.mark.parametrize("command", sorted(FLAGS))
def test_every_command_and_flag_is_still_there(capsys, command) -> None:
    words = _help(capsys, command)
    assert FLAGS[command] <= words, FLAGS[command] - words


def test_package_exposes_the_entry_points() -> None:
    assert cli.main is __import__("gapsvm.cli.main", fromlist=["main"]).main
    assert callable(cli.build_parser) and issubclass(cli.CLIError, Exception)
    with pytest.raises(ValueError, match="unknown classifier 'nope'"):
        cli.resolve_classifier("nope")


@pytest.mark.parametrize("command", ["predict", "features", "evaluate"])
def test_unknown_flags_are_usage_errors_outside_train(capsys, command) -> None:
    argv = {"predict": ["m.skops", "x.png"], "features": ["folder"],
            "evaluate": ["m.skops", "b.csv", "--images", "i", "--out", "o"]}[command]
    with pytest.raises(SystemExit) as exc:
        run_cli(capsys, command, *argv, "--classifier__C", "1")
    assert exc.value.code == 2
    assert "unrecognized arguments: --classifier__C 1" in capsys.readouterr().err


def test_a_bad_input_size_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        run_cli(capsys, "features", "folder", "--input-size", "12x12")
    assert exc.value.code == 2
    assert "use at least 32x32" in capsys.readouterr().err


@pytest.mark.parametrize("via", ["console script", "python -m gapsvm.cli"])
def test_console_script_help(via) -> None:
    exe = Path(sys.executable).with_name("gapsvm")
    if via == "console script" and not exe.is_file():
        pytest.skip("the gapsvm console script is not installed in this environment")
    cmd = [str(exe)] if via == "console script" else [sys.executable, "-m", "gapsvm.cli"]
    res = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    for sub in ("weights", "features", "train", "predict", "cam", "detect", "report",
                "evaluate", "demo"):
        assert sub in res.stdout
    res = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("gapsvm ")


# -- help text (issue 15, item 3) ---------------------------------------------------------
def _option_entries(help_text: str) -> dict[str, str]:
    """``--option`` -> its whole entry (usage line and wrapped help) in an ``options`` list."""
    entries: dict[str, str] = {}
    current = None
    for line in help_text.splitlines():
        head = re.match(r"  (-[-\w]+(?:, -[-\w]+)*)(\s|$)", line)
        if head:
            current = head.group(1).split(", ")[-1]
            entries[current] = line
        elif current and line.startswith("    "):
            entries[current] += " " + line.strip()
        else:
            current = None
    return entries


@pytest.mark.parametrize("command", sorted(FLAGS))
def test_every_option_has_help_and_shows_its_default(capsys, command) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    entries = _option_entries(capsys.readouterr().out)
    assert {f for f in FLAGS[command] if f.startswith("--")} <= set(entries)
    for option, entry in entries.items():
        if option in ("--help", "--version"):
            continue
        invocation = re.match(r"\s+-[-\w]+(, -[-\w]+)*( [A-Z{]\S*)?", entry)
        takes_value = invocation.group(2) is not None
        assert len(entry[invocation.end():].strip()) > 10, f"{command} {option}: no help"
        if takes_value:  # a flag is off by default; an option says what it defaults to
            assert "default" in entry or "(required)" in entry, f"{command} {option}: {entry!r}"


def test_named_options_have_help_and_weights_lists_its_subcommands(capsys) -> None:
    def entry(command: str, option: str) -> str:
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        return _option_entries(capsys.readouterr().out)[option]

    assert "cross-validation folds" in entry("train", "--cv") and "(default: 5)" in entry(
        "train", "--cv")
    assert "seed" in entry("train", "--seed") and "(default: 0)" in entry("train", "--seed")
    assert "model file" in entry("train", "--out") and "model.skops" in entry("train", "--out")
    assert "features file" in entry("features", "--out")
    assert "(default: vgg16)" in entry("weights", "--backbone")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    top = capsys.readouterr().out
    assert re.search(r"weights\s+the backbone weights: install, info, verify", top), top
    with pytest.raises(SystemExit):
        build_parser().parse_args(["weights", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for action in ("install:", "info:", "verify:"):
        assert action in text


def test_demo_help_shows_the_demo_sizes() -> None:
    # cli/demo.py spells the defaults so --help needs no numpy: they must stay the demo's own.
    from gapsvm.cli import demo
    from gapsvm.workflows import demo as workflow

    assert (demo.TRAIN_SIZE, demo.PHOTO_SIZE) == (workflow.TRAIN_SIZE, workflow.PHOTO_SIZE)
    args = build_parser().parse_args(["demo"])
    assert (args.train_size, args.photo_size) == (workflow.TRAIN_SIZE, workflow.PHOTO_SIZE)


def test_detect_flags_show_the_libraries_defaults_without_numpy() -> None:
    # cli/_common.py spells detect()'s defaults so --help needs no numpy: they must stay its own.
    import inspect

    from gapsvm.estimator.detection import DEFAULT_NMS_IOU, DEFAULT_SCALES, detect_of

    assert _common.DETECT_SCALES == DEFAULT_SCALES and _common.DETECT_NMS_IOU == DEFAULT_NMS_IOU
    defaults = {k: v.default for k, v in inspect.signature(detect_of).parameters.items()}
    args = build_parser().parse_args(["detect", "m.skops", "x.png", "--target", "a",
                                      "--out", "o"])
    assert _common.detect_options(args) == {k: defaults[k] for k in (
        "scales", "window", "stride", "nms_iou", "score_threshold", "max_detections",
        "box_vote")}


@pytest.mark.parametrize("command", ["detect", "evaluate"])
def test_no_box_vote_reaches_detect(command) -> None:
    base = (["detect", "m.skops", "x.png", "--target", "a", "--out", "o"] if command == "detect"
            else ["evaluate", "m.skops", "b.csv", "--images", "d", "--out", "o", "--detect"])
    assert _common.detect_options(build_parser().parse_args(base))["box_vote"] is True
    args = build_parser().parse_args([*base, "--no-box-vote"])
    assert _common.detect_options(args)["box_vote"] is False


@pytest.mark.parametrize(
    "flag, value, message",
    [("--scales", "0", "scale"), ("--window", "8", "HxW"), ("--nms-iou", "1.5", "outside"),
     ("--score-threshold", "nan", "finite"), ("--max-detections", "0", "too small"),
     ("--stride", "x", "whole number")],
)
def test_bad_detect_options_are_usage_errors(capsys, flag, value, message) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["detect", "m.skops", "x.png", "--target", "a", "--out", "o",
                                   flag, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and message in err


@pytest.mark.parametrize("argv", [["-v", "weights", "info"], ["weights", "info", "-v"],
                                  ["weights", "info"]])
def test_verbose_goes_before_or_after_the_command(argv) -> None:
    args = build_parser().parse_args(argv)
    assert args.verbose is ("-v" in argv)


# -- start-up (items 2 and 9c) ------------------------------------------------------------
HEAVY = ("tensorflow", "keras", "sklearn", "cv2", "scipy", "numpy")


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["predict", "--help"],
                                  ["detect", "--help"], ["evaluate", "--help"],
                                  ["detect", "m.skops", "x.png", "--bogus"],
                                  ["features", "folder", "--bogus"],
                                  ["train", "f.joblib", "--cv", "many"],
                                  ["features", "folder", "--backbone", "resnet50"]])
def test_help_and_usage_errors_load_no_heavy_library(argv) -> None:
    # A fresh interpreter: what `gapsvm ARGV` imports before it exits (status 0 or 2).
    code = (
        "import sys\n"
        "from gapsvm.cli.main import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, 2), exc.code\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    assert fresh_python(code, timeout=120).stdout.splitlines()[-1] == "[]"


def test_importing_gapsvm_is_lazy_but_complete() -> None:
    code = (
        "import sys, gapsvm\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
        "missing = [n for n in gapsvm.__all__ if getattr(gapsvm, n, None) is None]\n"
        "print(missing, 'tensorflow' in sys.modules)\n"
    )
    lines = fresh_python(code, timeout=120).stdout.splitlines()
    assert lines == ["[]", "[] False"]


# -- --backbone takes a registry name (issue 15, backbones) -------------------------------
def test_backbone_choices_come_from_the_registry_without_numpy() -> None:
    # a new registry entry is a --backbone choice with no second list to keep in step, and
    # listing them loads neither numpy nor TensorFlow
    code = (
        "import sys\n"
        "from gapsvm.cli.main import build_parser\n"
        "from gapsvm.network.backbone.registry import BACKBONES\n"
        "p = build_parser()\n"
        "sub = next(a for a in p._actions if a.dest == 'command').choices['features']\n"
        "choices = next(a for a in sub._actions if a.dest == 'backbone').choices\n"
        "print(tuple(choices) == tuple(BACKBONES), 'numpy' in sys.modules)\n"
    )
    assert fresh_python(code, timeout=120).stdout.split() == ["True", "False"]


@pytest.mark.parametrize("argv", [["features", "folder"], ["weights", "info"]])
def test_an_unknown_backbone_is_a_usage_error_naming_the_known_ones(capsys, argv) -> None:
    from gapsvm.network.backbone.registry import BACKBONES

    with pytest.raises(SystemExit) as exc:
        run_cli(capsys, *argv, "--backbone", "resnet50")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --backbone: invalid choice: 'resnet50'" in err
    assert all(f"'{name}'" in err for name in BACKBONES)
    for name in BACKBONES:  # every registry name is accepted
        assert build_parser().parse_args([*argv, "--backbone", name]).backbone == name
