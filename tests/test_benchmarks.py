"""The benchmark scripts are code too: each runs here in a tiny mode (a few real images, random
weights, 32x32 inputs) and must return every row with sane values. Speeds are not judged
here (a test machine is no benchmark machine), but the counts are: one network pass per
image in a grid search, none after a head swap, no retracing in native-size mode."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) leaves the root off the path
    sys.path.insert(0, str(ROOT))

from benchmarks import common, run  # noqa: E402

TINY = {"weights": None, "input_size": (32, 32)}


def check_rows(out: dict, n_min: int = 1) -> list[dict]:
    rows = out["rows"]
    assert len(rows) >= n_min
    for r in rows:
        assert set(r) >= {"name", "value", "target", "passed", "text", "detail"}
        assert r["name"] and isinstance(r["detail"], str)
        if r["value"] is not None:
            assert math.isfinite(r["value"]), r
        if r["target"]:
            assert r["passed"] in (True, False) or r["value"] is None
        else:
            assert r["passed"] is None
    return rows


def by_prefix(rows: list[dict], prefix: str) -> dict:
    found = [r for r in rows if r["name"].startswith(prefix)]
    assert found, f"no row starting with {prefix!r} in {[r['name'] for r in rows]}"
    return found[0]


# -- helpers ------------------------------------------------------------------------------
def test_row_verdicts() -> None:
    assert common.row("a", 0.97, at_least=0.95)["passed"] is True
    assert common.row("a", 0.90, at_least=0.95)["passed"] is False
    assert common.row("a", 1.3, at_most=1.2, unit="x")["text"] == "1.300x"
    assert common.row("a", 1.0, equals=1.0)["passed"] is True
    assert common.row("a", 2.0, equals=1.0)["passed"] is False
    info = common.row("a", 3.0)
    assert info["passed"] is None and run.verdict(info) == "info"
    assert run.verdict(common.row("a", None, at_least=1.0)) == "n/a"


def test_bf16_target_follows_the_cpu_flags() -> None:
    assert common.bf16_target({"amx_bf16", "avx512_bf16"})[0] == 5.0
    assert common.bf16_target({"avx512_bf16"})[0] == 1.8
    target, label = common.bf16_target({"avx2"})
    assert target is None and "no target" in label


def test_variants_are_distinct_and_keep_the_format(shared_data, tmp_path) -> None:
    from gapsvm.core.cache import content_key
    from gapsvm.core.decode import read_bytes, read_image

    src = common.real_images("smoke")[:3]
    paths = common.make_variants(src, 7, tmp_path / "v", seed=1)
    assert len(paths) == 7
    assert len({content_key(read_bytes(p)) for p in paths}) == 7
    assert all(Path(p).suffix in (".jpg", ".png") for p in paths)
    same = common.make_variants(src[:1], 3, tmp_path / "k", keep_size=True)
    assert {read_image(p).shape for p in same} == {read_image(src[0]).shape}


def test_paired_ratio_is_the_median_of_pairs() -> None:
    nums = iter([2.0, 4.0, 30.0])
    dens = iter([1.0, 1.0, 1.0])
    ratio, a, b = common.paired_ratio(lambda: next(nums), lambda: next(dens), 3)
    assert ratio == 4.0 and a == [2.0, 4.0, 30.0] and b == [1.0, 1.0, 1.0]


def test_runner_tables_and_plan() -> None:
    rows = [common.row("1. x", 0.97, at_least=0.95, detail="a | b"), common.row("2. y", None)]
    text = run.format_table(rows)
    assert "PASS" in text and "n/a" in text
    machine = {"date": "today", "cpu": "CPU", "cores": 2, "amx_bf16": True,
               "avx512_bf16": True, "python": "3", "tensorflow": "2", "keras": "3",
               "numpy": "2", "scikit-learn": "1", "load_average": (1.0, 1.0, 1.0)}
    md = run.format_markdown(rows, machine, "default", 1.0)
    assert "| 1. x | 0.970 | >= 0.950 | PASS | a \\| b |" in md
    assert "CPU (no signature), 2 cores" in md
    for mode in ("quick", "default", "full"):
        p = run.plan(mode)
        assert set(p) == set(run.BENCHES)
    assert 10000 in run.plan("full")["memory"][0]["sizes"]
    assert run.plan("default")["memory"][0]["cam"]["n_large"] >= 1  # rows 6b and 6c
    assert 10000 not in run.plan("default")["memory"][0]["sizes"]


def test_distributed_is_skipped_with_a_note_without_dask(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name in ("dask", "distributed") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    out = run.run_distributed()
    assert out["rows"] == [] and ("dask" in out["note"] or "not present" in out["note"])


# -- each benchmark in a tiny mode --------------------------------------------------------
def test_pipeline_bench(shared_data, tmp_path) -> None:
    from benchmarks import bench_pipeline

    out = bench_pipeline.run(n_images=8, batch_size=4, repeats=1, precision="float32",
                             kind="persons", strategies=True, native=True, n_native=6,
                             workdir=tmp_path, **TINY)
    rows = check_rows(out, 3)
    assert 0 < by_prefix(rows, "1. ")["value"] < 10
    assert by_prefix(rows, "1b.")["value"] == 0  # no retracing in native-size mode
    assert out["native"]["images"] == 6 and out["native"]["batches"] >= 1
    # Each strategy is a distinct configuration of public parameters (the writer-thread rows
    # went with the writer thread: they measured the same code twice).
    assert list(out["strategies"]) == [name for name, _ in bench_pipeline.STRATEGIES]
    assert len({p for _, p in bench_pipeline.STRATEGIES}) == len(out["strategies"]) == 5
    assert not [name for name in out["strategies"] if "writer" in name]
    assert all(0 < v < 10 for v in out["strategies"].values())


def test_precision_bench(shared_data) -> None:
    from benchmarks import bench_precision

    out = bench_precision.run(n_speed=4, speed_size=(32, 32), speed_batch=2, repeats=1,
                              n_accuracy=20, accuracy_size=(32, 32), folds=2,
                              cam_size=(64, 64), n_cam_photos=2, weights=None, batch_size=8)
    rows = check_rows(out, 3)
    assert by_prefix(rows, "2. ")["value"] > 0
    assert 0 <= by_prefix(rows, "2a.")["value"] <= 100
    assert -1 <= by_prefix(rows, "2b.")["value"] <= 1
    assert out["speed"]["policies"]["bfloat16"] == ["mixed_bfloat16"]
    assert out["speed"]["policies"]["float32"] == ["float32"]


def test_pearson() -> None:
    from benchmarks.bench_precision import pearson

    a = np.arange(12.0).reshape(3, 4)
    assert pearson(a, 2 * a + 1) == pytest.approx(1.0)
    assert pearson(a, -a) == pytest.approx(-1.0)
    assert pearson(np.ones(4), np.ones(4)) == 1.0


def test_cache_bench(shared_data, tmp_path) -> None:
    from benchmarks import bench_cache

    out = bench_cache.run(n_images=6, precision="float32", kind="persons", batch_size=4,
                          workdir=tmp_path, **TINY)
    check_rows(out, 1)
    assert out["computed"] == 6 and out["recomputed"] == 0
    assert 0 < out["rows"][0]["value"] < 5


def test_search_bench_runs_the_network_once_per_image(shared_data, tmp_path) -> None:
    from benchmarks import bench_search

    out = bench_search.run(n_images=20, n_heads=2, folds=2, batch_size=8, workdir=tmp_path,
                           **TINY)
    rows = check_rows(out, 2)
    assert out["passes_per_image"] == 1.0
    assert by_prefix(rows, "4. ")["passed"] is True


@pytest.mark.filterwarnings("ignore::DeprecationWarning:tf_keras_vis.*")
def test_cam_bench_swaps_heads_without_the_network(shared_data, tmp_path) -> None:
    from benchmarks import bench_cam

    out = bench_cam.run(n_images=4, batch_size=2, repeats=1, n_train=8, kind="persons",
                        gradcam=True, workdir=tmp_path, **TINY)
    rows = check_rows(out, 3)
    assert out["swap_passes"] == 0
    assert by_prefix(rows, "5b.")["passed"] is True
    grad = by_prefix(rows, "5a.")
    if bench_cam.gradcam_available():
        assert grad["value"] > 0
    else:
        assert grad["value"] is None and "not installed" in grad["detail"]


def test_memory_bench_in_fresh_processes(shared_data, tmp_path) -> None:
    from benchmarks import bench_memory

    out = bench_memory.run(sizes=(3, 6), modes=("explain",), kind="persons", batch_size=4,
                           workdir=tmp_path, **TINY)
    rows = check_rows(out, 2)
    peaks = out["results"]["explain"]
    assert set(peaks) == {3, 6}
    assert all(100 < v["peak_rss_mb"] < bench_memory.LIMIT_MB for v in peaks.values())
    assert peaks[6]["images_run"] == 6
    assert by_prefix(rows, "6a.")["passed"] is True


def test_memory_cam_rows_with_and_without_large_images(shared_data, tmp_path) -> None:
    from benchmarks import bench_memory

    # Tiny stand-ins for 640x320 images, 4000x3000 photos and 1x20000 strips (the strip is
    # still refused: too elongated for the bound at any size).
    out = bench_memory.run_cam(n_small=2, n_large=1, small_hw=(40, 64), large_hw=(120, 160),
                               strip_w=4000, weights=None, workdir=tmp_path)
    rows = check_rows(out, 2)
    peaks = out["results"]
    assert all(100 < peaks[k]["peak_rss_mb"] < bench_memory.LIMIT_MB
               for k in ("train", "small", "mixed"))
    assert peaks["small"]["images"] == 2 and peaks["mixed"]["images"] == 4
    # The strip is skipped with its reason; every other image gets its overlay.
    assert len(list((tmp_path / "cams-small").rglob("*.png"))) == 2
    assert len(list((tmp_path / "cams-mixed").rglob("*.png"))) == 3
    ratio = by_prefix(rows, "6b.")
    assert ratio["value"] == pytest.approx(peaks["mixed"]["peak_rss_mb"]
                                           / peaks["small"]["peak_rss_mb"])
    assert by_prefix(rows, "6c.")["passed"] is True


# -- the changes issue #5 made for speed keep every result identical -----------------------
def test_explain_streams_maps_into_the_same_cams(shared_data, persons_slice, tmp_path) -> None:
    from gapsvm import GapClassifier, GapFeaturizer
    from gapsvm.core.cam import class_activation_map
    from gapsvm.workflows.training import resolve_classifier

    paths, labels = persons_slice  # 24 of one class, then 24 of the other
    train = [*range(8), *range(40, 48)]
    shown = [paths[i] for i in [*range(8, 14), *range(34, 40)]]
    clf = GapClassifier(resolve_classifier("linearsvc"), weights=None, input_size=(32, 32),
                        cache_dir=tmp_path / "c", batch_size=8)
    clf.fit([paths[i] for i in train], labels[train])
    info = clf.explain(shown)
    # The same batches as the model's: oneDNN may pick other kernels for another batch size,
    # which changes the last bits of a float32 map.
    fz = GapFeaturizer(weights=None, input_size=(32, 32), cache_dir=None, verbose=0,
                       batch_size=8).fit()
    maps = fz.extract(shown, maps=True).maps
    W, _ = clf.head_.cam_weights()
    for cam, m, t in zip(info.cams, maps, info.target, strict=True):
        assert np.array_equal(cam, class_activation_map(m, W[t]))
    clf.set_params(cache_dir=tmp_path / "d")  # computed again: cached maps are float16
    fixed = clf.explain(shown, target=clf.classes_[0])
    for cam, m in zip(fixed.cams, maps, strict=True):
        assert np.array_equal(cam, class_activation_map(m, W[0]))


def test_startup_bench_rows() -> None:
    from benchmarks import bench_startup

    out = bench_startup.run(repeats=1)
    rows = check_rows(out, n_min=len(bench_startup.COMMANDS) + 2)
    assert all(r["name"].startswith("8. start-up") and r["value"] > 0 for r in rows)
    assert out["seconds"]["python -c pass"] > 0
    # The first line of `gapsvm train` comes before the end of the run.
    seconds = out["seconds"]
    assert 0 < seconds["`gapsvm train` first line"] < seconds["`gapsvm train` whole run"]
    assert seconds["`gapsvm report` first line"] > 0


def test_backbones_bench_times_every_registry_backbone_against_vgg16(shared_data) -> None:
    from benchmarks import bench_backbones
    from gapsvm.network.backbone.registry import BACKBONES

    out = bench_backbones.run(size=(64, 32), batch_size=2, warmup=1, batches=2)
    rows = check_rows(out, n_min=len(BACKBONES))
    assert list(out["backbones"]) == ["vgg16", *(n for n in BACKBONES if n != "vgg16")]
    assert all(r["target"] == "" and r["value"] > 0 for r in rows)  # information rows
    assert by_prefix(rows, "9. backbones: vgg16 ")["value"] == 1.0
    for name, b in out["backbones"].items():
        spec = BACKBONES[name]
        # The map the network returned, against the input size over the registry's stride.
        assert b["map"] == (64 // spec.stride, 32 // spec.stride), name
        assert (b["stride"], b["channels"], len(b["seconds"])) == (spec.stride, spec.channels, 2)
        row = by_prefix(rows, f"9. backbones: {name} ")
        assert row["value"] == pytest.approx(
            np.median(np.asarray(out["backbones"]["vgg16"]["seconds"]) / b["seconds"]))
        assert f"map {b['map'][0]}x{b['map'][1]}" in row["detail"]
    table = bench_backbones.markdown_table(out).splitlines()
    assert table[0].startswith("| backbone | feature layer | stride | feature size | map at 64x32")
    assert len(table) == 2 + len(BACKBONES) and "| `vgg16` | `block5_conv3` | 16 | 512 | 4x2 |" in (
        table[2])


def test_backbones_bench_is_in_the_plan() -> None:
    for mode in ("quick", "default", "full"):
        (kwargs,) = run.plan(mode)["backbones"]
        assert kwargs["warmup"] >= 1 and kwargs["batches"] >= 1
    assert run.plan("quick")["backbones"][0]["batches"] < run.plan("default")["backbones"][0][
        "batches"]


# -- issue 13's tables (benchmarks/wsol.py) ---------------------------------------------
def test_wsol_split_keeps_near_duplicates_together() -> None:
    from benchmarks import wsol

    labels = np.array(["a"] * 20 + ["b"] * 12)
    groups = np.array([f"g{i // 2}" for i in range(32)])  # pairs of near-duplicates
    parts = wsol.split(labels, groups)
    joined = np.concatenate(list(parts.values()))
    assert sorted(joined.tolist()) == list(range(32))  # disjoint and complete
    owner = {g: k for k, idx in parts.items() for g in groups[idx]}
    assert all(owner[g] == k for k, idx in parts.items() for g in groups[idx])
    train = labels[parts["train"]]
    assert (train == "a").sum() == 10 and (train == "b").sum() == 6
    assert parts["calibration"].size >= 1 and parts["scored"].size >= 1
    assert np.array_equal(wsol.split(labels, groups)["scored"], parts["scored"])  # seeded


def test_wsol_union_box_covers_every_component_the_largest_only_one() -> None:
    from benchmarks import wsol

    m = np.zeros((20, 40))
    m[2:8, 2:12] = 1.0  # the larger blob, 60 px
    m[12:16, 30:34] = 0.8  # a smaller one
    gt = [(2, 2, 34, 16)]  # the box around both
    t = np.array([0.5])
    largest = wsol.sweep_ious(m, gt, t, of_max=True)
    union = wsol.sweep_ious(m, gt, t, of_max=True, union=True)
    assert union[0] == pytest.approx(1.0)
    assert largest[0] == pytest.approx(60 / (32 * 14))
    # Above the smaller blob's peak only the larger one remains: both boxes agree.
    assert wsol.sweep_ious(m, gt, np.array([0.9]), of_max=True, union=True)[0] == largest[0]
    assert not wsol.sweep_ious(-m, gt, t, of_max=True).any()  # no positive value: no box


def test_wsol_variant_maps_against_hand_computed_ones() -> None:
    from benchmarks import wsol
    from gapsvm.core.cam import upsample_cam

    rng = np.random.default_rng(0)
    all_maps = rng.normal(size=(3, 4, 5)).astype(np.float32)
    x2, native = rng.normal(size=(8, 10)), rng.normal(size=(4, 9))
    hw = (32, 40)
    one_hot = wsol.variant_maps(all_maps, 1, np.array([0.0, 1.0, 0.0]), x2, native, hw)
    assert set(one_hot) == {kind for kind, _ in wsol.MAP_SPECS.values()}
    assert all(m.shape == hw for m in one_hot.values())
    cam = upsample_cam(all_maps[1], hw)
    np.testing.assert_allclose(one_hot["cam"], cam)
    np.testing.assert_allclose(one_hot["softmax"], cam, atol=1e-6)  # all weight on the class
    np.testing.assert_allclose(one_hot["contrastive"],
                               cam - (upsample_cam(all_maps[0], hw)
                                      + upsample_cam(all_maps[2], hw)) / 2, atol=1e-5)
    np.testing.assert_allclose(one_hot["multiscale"], (cam + upsample_cam(x2, hw)) / 2, atol=1e-6)
    np.testing.assert_allclose(one_hot["native"], upsample_cam(native, hw))
    assert np.abs(one_hot["bicubic"] - cam).max() > 1e-3
    # Uniform weights: the softmax map is the mean of the class maps.
    flat = wsol.variant_maps(all_maps, 0, np.full(3, 1 / 3), x2, native, hw)
    np.testing.assert_allclose(flat["softmax"], upsample_cam(all_maps.mean(axis=0), hw),
                               atol=1e-5)


def test_wsol_variants_need_a_fixed_input_size() -> None:
    from benchmarks import wsol

    assert wsol.fixed_size(224) == (224, 224) and wsol.fixed_size((64, 32)) == (64, 32)
    for size in (None, 2.0):
        with pytest.raises(ValueError, match="fixed input size"):
            wsol.fixed_size(size)


@pytest.mark.slow
def test_wsol_quick_tables(shared_data, caltech_slice, tmp_path) -> None:
    from benchmarks import wsol

    out = wsol.run(6, folds=2, cache_dir=tmp_path / "c", **TINY)
    assert [(r["set"], r["head"]) for r in out["accuracy"]] == [
        (s, h) for s in wsol.DATASETS for h in ("LinearSVC", "LogisticRegression")]
    for r in out["accuracy"]:
        assert r["images"] == 6 * r["classes"]
        assert all(0 <= r[k] <= 1 for k in ("cv_mean", "cv_std", "grouped_mean", "grouped_std"))
    for loc in out["localisation"]:
        ds = wsol.load_dataset(loc["set"], 6)
        parts = wsol.split(ds.labels, ds.groups)
        assert (loc["n_train"], loc["n_calibration"], loc["n_scored"]) == tuple(
            parts[k].size for k in ("train", "calibration", "scored"))
        rows = {r["method"]: r for r in loc["rows"]}
        assert list(rows) == list(wsol.METHODS)
        for r in loc["rows"]:
            assert all(0 <= r[k] <= 1 for k in ("gt_known", "top1", "maxboxacc_v2")), r
            assert r["top1"] <= r["gt_known"]
            assert (r["threshold"] is None) == (r["method"] in ("centred box", "whole image"))
        # The whole image's IoU with a box is the box's share of the image.
        share = [max(b.area for b in ds.boxes[i]) / np.prod(ds.image_hw[i])
                 for i in parts["scored"]]
        assert rows["whole image"]["gt_known"] == pytest.approx(np.mean(np.array(share) >= 0.5))
        assert (rows["centre-Gaussian (CAM threshold)"]["threshold"]
                == rows["CAM"]["threshold"])
        if loc["set"] == "tinyimagenet_10":  # square images: their own aspect is the square's
            assert rows["CAM, native aspect"] == {**rows["CAM"], "method": "CAM, native aspect"}
    md = wsol.markdown(out).splitlines()
    assert md[0].startswith("| set | images | classes | head | 5-fold |")
    assert sum(line.startswith("| method |") for line in md) == len(wsol.DATASETS)
    assert sum(line.startswith("| CAM |") for line in md) == len(wsol.DATASETS)


# -- issue 14's detection table (benchmarks/detection.py) -------------------------------------
def test_detection_split_alternates_photos_by_frame_number(shared_data) -> None:
    from benchmarks import detection

    even, odd = detection.photos()
    frames = [int(a.filename.split("seg")[1].split(".")[0]) for a in even + odd]
    assert len(even) == len(odd) == 20 and len(set(frames)) == 40
    order = sorted(frames)
    assert [int(a.filename.split("seg")[1].split(".")[0]) for a in even] == order[0::2]
    assert [int(a.filename.split("seg")[1].split(".")[0]) for a in odd] == order[1::2]


@pytest.mark.slow
def test_detection_quick_table(shared_data, tmp_path) -> None:
    from benchmarks import detection

    out = detection.run(True, weights=None, cache_dir=tmp_path / "c", log=lambda _: None,
                        picture=tmp_path / "p.png")
    even, odd = detection.photos(detection.QUICK["photos"])
    assert out["photos"] == {"even": len(even), "odd": len(odd)}
    other = "off" if out["settings"]["box_vote"] else "on"  # the same head, voting switched
    assert [r["method"] for r in out["rows"]] == [
        'boxes(mode="all"), INRIA crops only', "detect, INRIA crops only",
        f"detect, INRIA crops only, box voting {other}",
        "detect, INRIA crops + hard negatives",
        "detect, INRIA crops + hard negatives from smoke photos",
        "detect, box-supervised (even photos)",
        "detect, box-supervised + mined in its photos"]
    for r in out["rows"]:  # every row is scored on the odd photos only
        assert r["n_images"] == len(odd)
        assert r["n_ground_truth"] == sum(len(a.boxes) for a in odd)
        assert all(0 <= r[k] <= 1 for k in ("ap@0.5", "ap@0.3", "recall@1fppi", "best_recall"))
        assert r["ap@0.3"] >= r["ap@0.5"] - 1e-12
    for r in out["rows"][1:]:  # detect's false positives, by kind, add up in its top N
        k = r["false_positives"]
        assert k["top"] == min(r["n_ground_truth"], r["n_detections"])
        assert k["true_positives"] + k["background"] + k["localisation"] + k["duplicate"] == \
            k["top"]
        assert k["ap"] == pytest.approx(r["ap@0.5"])
        assert min(k["ap_without_background"], k["ap_without_localisation"]) >= k["ap"] - 1e-12
    s = out["settings"]
    assert s["scales"] == detection.QUICK["scales"] and s["windows"] in detection.QUICK["windows"]
    assert tuple(s["train_size"]) in detection.QUICK["train_sizes"]
    assert out["baseline"]["threshold"] in detection.BASELINE_THRESHOLDS
    assert out["mining"]["n_images"] == detection.QUICK["negatives"]
    c = out["correlation"]
    assert c["windows"] == 4 * len(odd) and -1 <= c["pearson"] <= 1
    assert [t["precision"] for t in out["throughput"]] == ["float32"]
    assert all(t["pyramid_per_s"] > 0 and t["one_pass_per_s"] > 0 for t in out["throughput"])
    import cv2

    drawn = cv2.imread(str(tmp_path / "p.png"))
    assert drawn.shape == (*odd[0].image_hw, 3)
    gray = cv2.cvtColor(drawn, cv2.COLOR_BGR2GRAY)
    assert (gray == 255).any()  # the true boxes, in white, over the heat map
    md = detection.markdown(out).splitlines()
    assert md[0].startswith("| method | AP@0.5 |") and len(md) >= 2 + len(out["rows"])
    kinds = [line for line in md if line.startswith("| detect, ") and "N=" in line]
    assert len(kinds) == len(out["rows"]) - 1
