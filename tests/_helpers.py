"""Helpers the test modules share: running the command line, a fresh interpreter, the
ImageNet weights file, and writing RGB images. Fixtures live in ``conftest.py``; the
bad-input corpus in ``_corpus.py``.

Import as ``from _helpers import run_cli`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv: object) -> tuple[int, str, str]:
    """Run ``gapsvm <argv>`` in-process through :func:`gapsvm.cli.main` (what the console
    script calls), so one backbone build serves a whole module.

    Parameters
    ----------
    capsys : pytest.CaptureFixture
        The test's ``capsys``; output printed before the call is dropped.
    *argv : object
        The arguments; paths and numbers are turned into text.

    Returns
    -------
    (exit status, stdout, stderr)
    """
    from gapsvm.cli.main import main

    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def fresh_python(code: str, *args: str, timeout: float = 300,
                 cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter (this venv's), for what this process cannot show:
    which modules an import loads, or the peak memory of a call. Fails on a non-zero exit.
    """
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout, check=True, cwd=cwd)


def run_cli_fresh(*argv: object, module: str = "tensorflow") -> tuple[int, str, bool]:
    """Run ``gapsvm <argv>`` in a new interpreter, for what an in-process run cannot show:
    whether the command loaded TensorFlow (or another ``module``).

    Returns
    -------
    (exit status, stdout, whether ``module`` was imported)
    """
    code = ("import sys\nfrom gapsvm.cli.main import main\nrc = main(sys.argv[2:])\n"
            "print(f'\\n{rc} {sys.argv[1] in sys.modules}')")
    res = fresh_python(code, module, *map(str, argv))
    out, _, last = res.stdout.rstrip("\n").rpartition("\n")
    rc, loaded = last.split()
    return int(rc), out.removesuffix("\n"), loaded == "True"


def imagenet_weights_file() -> Path:
    """The ImageNet VGG16 weights gapsvm uses: its installed file (``make weights``), else
    Keras' own cached download. The path may not exist; ``imagenet_ready`` checks it."""
    from gapsvm.network.backbone.registry import get_spec
    from gapsvm.network.backbone.weights import installed_weights_path, keras_cached_weights_path

    spec = get_spec("vgg16")
    ours = installed_weights_path(spec)
    return ours if ours.is_file() else keras_cached_weights_path(spec)


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB (or gray) ``uint8`` array as an image file, format from the suffix,
    creating the folder; OpenCV wants BGR, so colour channels are flipped here, once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    ok, buf = cv2.imencode(path.suffix, np.ascontiguousarray(pixels))
    assert ok, path
    path.write_bytes(buf.tobytes())
    return path


def tool(name: str) -> str:
    """A console script of this venv (``lint-imports``, ``gapsvm``), found beside Python."""
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.is_file() else name


def imported_modules(path: Path, *, members: bool = False) -> set[str]:
    """Every module a source file imports, function-local imports included (read with
    ``ast``, nothing is imported); relative imports are resolved against ``gapsvm``.

    With ``members=True``, ``from a import b`` also gives ``a.b`` (``b`` may be a module:
    ``from gapsvm import images``).
    """
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            module = f"gapsvm.{module}".rstrip(".") if node.level else module
            names.add(module)
            if members:
                names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def head_only_model(classifier=None):
    """A GapClassifier fitted on synthetic GAP vectors (8 features, classes "a" and "b"): no
    network runs (nor is checked on load with ``check_weights=False``)."""
    from sklearn.svm import LinearSVC

    from gapsvm import GapClassifier

    rng = np.random.default_rng(0)
    X = np.abs(rng.normal(size=(20, 8))).astype(np.float32)
    y = np.array(["a", "b"] * 10)
    meta = {"backbone": "vgg16", "layer": "block5_conv3", "stride": 16, "input_size": "32x32",
            "precision": "float32", "weights": {"name": "random(seed=0)", "sha256": "cd" * 32},
            "gapsvm_version": "0.0"}
    model = GapClassifier(LinearSVC() if classifier is None else classifier, weights=None,
                          input_size=(32, 32))
    return model.fit_features(X, y, meta)
