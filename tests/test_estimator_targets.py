"""Tests for gapsvm.estimator.targets: the one resolution of ``target`` (a class label or its
text) to class indices, for every command and method."""

from __future__ import annotations

import numpy as np
import pytest

from gapsvm.estimator.targets import ALL, class_index, is_all, resolve_target, resolve_targets

NAMES = np.array(["cat", "dog", "person"])
NUMBERS = np.array([1, 3, 10])


def test_class_index_matches_by_value() -> None:
    assert [class_index(NAMES, c) for c in ("cat", "dog", "person")] == [0, 1, 2]
    assert class_index(NUMBERS, 3) == 1
    assert class_index(NUMBERS, np.int64(10)) == 2  # a numpy scalar, as classes_ holds them
    assert class_index(NAMES, NAMES[2]) == 2


def test_text_finds_a_numeric_class() -> None:
    # The command line and CSV files give text; a model trained on integers has int classes.
    assert class_index(NUMBERS, "3") == 1
    assert class_index(NUMBERS, "10") == 2
    assert resolve_target(NUMBERS, "3") == 3 and isinstance(resolve_target(NUMBERS, "3"),
                                                            np.integer)


def test_an_unknown_class_is_refused_listing_the_classes() -> None:
    with pytest.raises(ValueError) as info:
        class_index(NAMES, "horse")
    assert str(info.value) == (
        "unknown target class 'horse'; the model's classes are ['cat', 'dog', 'person']"
    )
    with pytest.raises(ValueError, match=r"unknown target class '4'; the model's classes are "
                       r"\['1', '3', '10'\]"):
        class_index(NUMBERS, "4")
    with pytest.raises(ValueError, match="unknown target class 'horse'"):
        resolve_target(NAMES, "horse")


def test_resolve_target_keeps_none() -> None:
    assert resolve_target(NAMES, None) is None
    assert resolve_target(NAMES, "dog") == "dog"


def test_resolve_targets_none_one_label_or_one_per_image() -> None:
    predicted = np.array(["person", "cat", "person"])
    np.testing.assert_array_equal(resolve_targets(None, NAMES, predicted, 3), [2, 0, 2])
    one = resolve_targets("dog", NAMES, predicted, 3)
    assert one.dtype.kind == "i"
    np.testing.assert_array_equal(one, [1, 1, 1])
    np.testing.assert_array_equal(resolve_targets(["cat", "dog", "cat"], NAMES, None, 3),
                                  [0, 1, 0])
    np.testing.assert_array_equal(resolve_targets(np.array(["3", "1"]), NUMBERS, None, 2),
                                  [1, 0])
    np.testing.assert_array_equal(resolve_targets(np.int64(10), NUMBERS, None, 2), [2, 2])


def test_a_string_is_one_label_not_a_sequence_of_letters() -> None:
    # "dog" has three letters and there are three images: still one label for all three.
    np.testing.assert_array_equal(resolve_targets("dog", NAMES, None, 3), [1, 1, 1])
    np.testing.assert_array_equal(resolve_targets(b"dog", np.array([b"cat", b"dog"]), None, 3),
                                  [1, 1, 1])


def test_resolve_targets_errors() -> None:
    with pytest.raises(ValueError, match="got 3 targets for 2 images: give one, or one per "
                       "image"):
        resolve_targets(["cat", "dog", "cat"], NAMES, None, 2)
    with pytest.raises(ValueError, match=r"unknown target class 'horse'.*'cat', 'dog', "
                       r"'person'"):
        resolve_targets(["cat", "horse"], NAMES, None, 2)


def test_all_is_every_class_for_every_image() -> None:
    every = resolve_targets("all", NAMES, None, 2)
    assert every.dtype.kind == "i"
    np.testing.assert_array_equal(every, [[0, 1, 2], [0, 1, 2]])
    assert resolve_targets(ALL, NUMBERS, None, 0).shape == (0, 3)
    assert is_all("all") and not is_all(["all"]) and not is_all(np.str_("dog"))
    # Only where a caller allows it; elsewhere "all" is a label like any other.
    assert resolve_target(NAMES, "all", allow_all=True) == ALL
    with pytest.raises(ValueError, match="unknown target class 'all'"):
        resolve_target(NAMES, "all")


def test_all_is_refused_for_a_model_with_a_class_named_all() -> None:
    odd = np.array(["all", "some"])
    with pytest.raises(ValueError, match="'all' is ambiguous: this model has a class named 'all'"):
        resolve_targets("all", odd, None, 2)
    with pytest.raises(ValueError, match="ambiguous"):
        resolve_target(odd, "all", allow_all=True)
    assert resolve_target(odd, "all") == "all"  # where "all" is not allowed: the class
    np.testing.assert_array_equal(resolve_targets(["all", "some"], odd, None, 2), [0, 1])
