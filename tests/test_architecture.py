"""The layers as tests (docs/architecture.md): imports point only downward, the import graph has
no cycle, the pure core never loads TensorFlow, and gapsvm 0.1's import paths still work.

``make lint`` runs the same import-linter contracts; here they are also shown to fail: a
copy of the package with one deliberate upward import breaks them. No TensorFlow work.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from pathlib import Path

import grimp
import pytest
from _helpers import ROOT, fresh_python, imported_modules, tool

from gapsvm._legacy import MOVED

PACKAGE = ROOT / "gapsvm"
LAYERS_CONTRACT = "layers: utils < core < network < estimator < workflows < cli"

#: gapsvm 0.1's public names (each flat module's ``__all__``), frozen here: every one must
#: still import from its old path.
OLD_PUBLIC_NAMES: dict[str, tuple[str, ...]] = {
    "gapsvm.images": (
        "IMAGE_EXTENSIONS", "MAX_PIXELS", "MIN_SIDE", "UNSUPPORTED_IMAGE_EXTENSIONS",
        "ImageReadError", "decode_image", "format_size", "list_images", "load_directory",
        "parse_input_size", "read_image", "resize_image", "safe_label", "target_size",
        "write_png",
    ),
    "gapsvm.cam": (
        "class_activation_map", "class_weights", "normalize_cam", "overlay", "upsample_cam",
    ),
    "gapsvm.boxes": (
        "Box", "BoxLike", "as_box", "as_boxes", "boxes_to_mask", "cam_to_boxes", "draw_boxes",
        "iou",
    ),
    "gapsvm.metrics": (
        "PixelSchedule", "auc", "average_drop", "best_iou", "box_area_share",
        "box_recall_precision", "center_box", "center_map", "corloc",
        "deletion_insertion_orders", "energy_in_box", "increase_in_confidence",
        "linear_gap_curves", "linear_gap_scores", "match_boxes", "pointing_game", "random_map",
        "scaled_tolerance", "uniform_map",
    ),
    "gapsvm.cache": (
        "PREPROCESS_VERSION", "CacheEntry", "CacheWriteError", "FeatureCache", "content_key",
    ),
    "gapsvm.head": ("GapHead", "NotLinearError", "effective_linear"),
    "gapsvm.safe_load": ("UnsafeFileError", "safe_joblib_load"),
    "gapsvm.backbone": (
        "BACKBONES", "PRECISIONS", "Backbone", "BackboneSpec", "OfflineSource", "get_backbone",
        "get_spec",
    ),
    "gapsvm.weights": (
        "WeightsError", "WeightsIdentity", "conv_content_hash", "install_offline_weights",
        "installed_weights_path", "keras_cached_weights_path", "model_content_hash",
    ),
    "gapsvm.featurizer": ("ExtractionResult", "GapFeaturizer", "ImageResult", "iter_features"),
    "gapsvm.distributed": (
        "DistributedExtractionResult", "dask_client", "extract_distributed", "local_cluster",
        "warm_up_workers", "worker_env",
    ),
    "gapsvm.persist": ("ModelLoadError", "load_model", "save_model", "trusted_types"),
    "gapsvm.evaluate": (
        "CSV_COLUMNS", "METHODS", "Annotation", "BoxesCSVError", "evaluate",
        "evaluation_overlay", "format_table", "parse_scales", "read_boxes_csv", "write_report",
    ),
    "gapsvm.report": ("Report", "ReportEntry", "build_report", "read_boxes_csv"),
    "gapsvm.demo": (
        "FACE_BOXES", "FACE_CLASS", "NOT_FACE_CLASS", "PHOTOS", "DemoData", "DemoError",
        "run_demo", "write_demo_data",
    ),
    # Modules that became packages of the same name.
    "gapsvm.cli": ("main", "resolve_classifier"),
    "gapsvm.estimator": ("GapClassifier",),
}  # fmt: skip


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the pyproject.toml in ``root``, on the package in ``root``."""
    return subprocess.run(
        [tool("lint-imports"), "--no-cache", "--no-logo"], cwd=root, capture_output=True,
        text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(root)},
    )


def _gapsvm_modules(*layers: str) -> list[Path]:
    """The package's source files, or those of the given layers (``"core"``, ...)."""
    return sorted(p for p in PACKAGE.rglob("*.py")
                  if not layers or p.relative_to(PACKAGE).parts[0] in layers)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# -- the contracts -------------------------------------------------------------------------
def test_the_layer_contracts_hold() -> None:
    res = _lint_imports(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{LAYERS_CONTRACT} KEPT" in res.stdout
    assert "workflows never import each other KEPT" in res.stdout


def test_an_upward_import_breaks_the_layer_contract(tmp_path: Path) -> None:
    shutil.copytree(PACKAGE, tmp_path / "gapsvm",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    cam = tmp_path / "gapsvm" / "core" / "cam.py"
    cam.write_text(cam.read_text(encoding="utf-8") + "\nimport gapsvm.cli  # upward\n",
                   encoding="utf-8")
    res = _lint_imports(tmp_path)
    assert res.returncode != 0, res.stdout
    assert f"{LAYERS_CONTRACT} BROKEN" in res.stdout
    # The copy was analysed (not the installed package), and the message names the import.
    assert "gapsvm.core is not allowed to import gapsvm.cli" in res.stdout
    assert "gapsvm.core.cam -> gapsvm.cli" in res.stdout


# -- the import graph ----------------------------------------------------------------------
def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (or a self-import):
    every import cycle lies inside one. Tarjan's algorithm, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                scc = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    scc.append(member)
                    if member == node:
                        break
                if len(scc) > 1 or node in graph[node]:
                    found.append(sorted(scc))
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert sorted(_cycles(graph)) == [["a", "b", "c"], ["e"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_has_no_cycle() -> None:
    # grimp reads every import statement, function-local ones included: an import moved into
    # a function to dodge a cycle at import time still counts.
    g = grimp.build_graph("gapsvm", cache_dir=None)
    graph = {m: set(g.find_modules_directly_imported_by(m)) for m in g.modules}
    cycles = _cycles(graph)
    for scc in cycles:
        chain = g.find_shortest_chain(importer=scc[0], imported=scc[1]) if len(scc) > 1 else ()
        print("cycle among", scc, "e.g.", " -> ".join(chain or ()))
    assert cycles == [], cycles


def test_no_module_uses_a_legacy_import_path() -> None:
    offenders = {}
    for path in _gapsvm_modules():
        if path.name == "_legacy.py":
            continue  # the table itself
        names = imported_modules(path, members=True)
        old = sorted(n for n in names if n in MOVED or any(n.startswith(f"{m}.") for m in MOVED))
        if old:
            offenders[_module_name(path)] = old
    assert offenders == {}, offenders


@pytest.mark.parametrize("path", _gapsvm_modules("utils", "core"), ids=_module_name)
def test_lower_layers_import_no_deep_learning_framework(path: Path) -> None:
    # utils and core: numpy, OpenCV, scikit-learn and the standard library, never Keras.
    roots = {n.split(".")[0] for n in imported_modules(path)}
    assert not roots & {"tensorflow", "keras", "torch", "tf_keras", "dask"}, roots


def test_importing_the_package_and_its_core_loads_no_tensorflow() -> None:
    core = [_module_name(p) for p in _gapsvm_modules("utils", "core")]
    code = (
        "import importlib, sys\n"
        f"for m in ['gapsvm', *{core!r}]:\n"
        "    importlib.import_module(m)\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    assert fresh_python(code, timeout=300).stdout.strip() == "[]"


# -- gapsvm 0.1's import paths -------------------------------------------------------------
def test_every_moved_module_has_its_old_names_listed_here() -> None:
    assert set(MOVED) <= set(OLD_PUBLIC_NAMES)


@pytest.mark.parametrize("old", sorted(OLD_PUBLIC_NAMES))
def test_old_import_paths_still_work(old: str) -> None:
    module = importlib.import_module(old)
    missing = [n for n in OLD_PUBLIC_NAMES[old] if not hasattr(module, n)]
    assert missing == [], f"{old} lost {missing}"
    if old in MOVED:
        # The name is the object itself, from its one new home, not a copy.
        homes = [importlib.import_module(h) for h in MOVED[old]]
        for name in OLD_PUBLIC_NAMES[old]:
            assert any(getattr(h, name, None) is getattr(module, name) for h in homes), name
