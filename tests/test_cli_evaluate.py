"""``gapsvm evaluate``'s input sizes (gapsvm/cli/evaluate.py): ``--input-size`` in the grammar
of every other command (scales of each photo and fixed sizes), with ``--scale`` and
``--scales`` kept as the older spellings of scales."""

from __future__ import annotations

import pytest

from gapsvm.cli.main import build_parser
from gapsvm.core.sizes import parse_scales

BASE = ["evaluate", "model.skops", "boxes.csv", "--images", "imgs", "--out", "out"]


def _settings(*flags: str) -> dict:
    return vars(build_parser().parse_args([*BASE, *flags]))


@pytest.mark.parametrize(
    "old, unified, scales",
    [
        ([], ["--input-size", "native"], (1.0,)),
        (["--scale", "2"], ["--input-size", "x2"], (2.0,)),
        (["--scale", "1.5"], ["--input-size", "1.5x"], (1.5,)),
        (["--scales", "1,2"], ["--input-size", "x1,x2"], (1.0, 2.0)),
        (["--scales", "1,1.5,2"], ["--input-size", "x1,x1.5,x2"], (1.0, 1.5, 2.0)),
    ],
)
def test_scale_and_input_size_spell_the_same_settings(old, unified, scales) -> None:
    a, b = _settings(*old), _settings(*unified)
    assert a == b  # every setting, not only the scales
    assert a["scales"] == scales == parse_scales(unified[1])


def test_the_spellings_exclude_each_other(capsys) -> None:
    for pair in (["--scale", "2", "--input-size", "x2"], ["--scale", "2", "--scales", "1,2"]):
        with pytest.raises(SystemExit):
            _settings(*pair)
        assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["0", "-1", "a", "1,a", "16x16"])
def test_bad_scales_are_usage_errors(capsys, bad) -> None:
    with pytest.raises(SystemExit) as exc:
        _settings("--input-size", bad)
    assert exc.value.code == 2
    assert "scale" in capsys.readouterr().err


def test_a_bare_number_is_a_size_in_input_size_and_a_scale_in_scale(capsys) -> None:
    # one grammar for --input-size in every command: "2" is 2x2 pixels there, so evaluate,
    # which takes only scales of each photo, refuses it and says how to write the scale
    with pytest.raises(SystemExit) as exc:
        _settings("--input-size", "2")
    assert exc.value.code == 2 and "x2" in capsys.readouterr().err
    assert _settings("--scale", "2")["scales"] == (2.0,)


@pytest.mark.parametrize(
    "text, sizes",
    [
        ("224x224", ((224, 224),)),
        ("224", ((224, 224),)),  # a bare whole number is the square, as in every command
        ("128x64", ((128, 64),)),  # height x width
        ("x1,224x224", (1.0, (224, 224))),  # a multi-scale CAM may mix the two
    ],
)
def test_input_size_takes_the_fixed_size_a_head_was_trained_at(text, sizes) -> None:
    assert _settings("--input-size", text)["scales"] == sizes
