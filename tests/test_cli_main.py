"""The ``gapsvm`` entry point (gapsvm/cli/main.py, gapsvm/cli/app.py): every command and flag
of the command line, the console script, ``python -m gapsvm.cli``, usage errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import run_cli

from gapsvm import cli
from gapsvm.cli.main import build_parser

#: Every command and its arguments as gapsvm 0.1 spelled them: none may go away.
FLAGS = {
    "weights": {"{install,info,verify}", "--backbone", "--force"},
    "features": {"data_dir", "--out", "--input-size", "--precision", "--weights", "--backbone",
                 "--cache-dir", "--batch-size", "--quiet", "-q", "--strict", "--errors",
                 "--no-maps", "--scheduler", "--workers", "--chunk-size"},
    "train": {"features", "--classifier", "--C", "--cv", "--seed", "--weights", "--out"},
    "predict": {"model", "images", "--trusted", "--input-size", "--precision", "--cache-dir",
                "--batch-size", "--quiet", "-q", "--strict", "--csv"},
    "cam": {"model", "images", "--trusted", "--input-size", "--precision", "--cache-dir",
            "--batch-size", "--quiet", "-q", "--strict", "--target", "--out", "--alpha",
            "--save-npy"},
    "report": {"model", "images_dir", "--out", "--trusted", "--input-size", "--precision",
               "--cache-dir", "--batch-size", "--quiet", "-q", "--strict", "--target",
               "--boxes", "--alpha", "--max-per-class", "--title", "--note", "--notes"},
    "demo": {"--out", "--n-per-class", "--weights", "--cache-dir", "--train-size",
             "--photo-size", "--quiet", "-q"},
    "evaluate": {"model", "boxes_csv", "--images", "--out", "--scale", "--scales", "--mode",
                 "--threshold", "--faithfulness", "--steps", "--image-steps", "--seed",
                 "--inclusive-max", "--alpha", "--trusted", "--cache-dir", "--quiet", "-q"},
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
    for sub in ("weights", "features", "train", "predict", "cam", "report", "evaluate", "demo"):
        assert sub in res.stdout
    res = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("gapsvm ")
