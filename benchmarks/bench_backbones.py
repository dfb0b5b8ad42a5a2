"""Row 9: the throughput of every registry backbone, as a ratio to VGG16's in the same run.

Every backbone of :data:`gapsvm.network.backbone.registry.BACKBONES` is built with random
weights (speed does not depend on the weights), float32, and fed the same batch of real
photos resized to 224x224. After warm-up batches (the first call traces the graph), the
timed batches go to the backbones in turn, one batch each per round, so that every round
sees the same machine load; a backbone's ratio to VGG16 is the median over rounds of VGG16's
time divided by its own (above 1: faster than VGG16). The rows have no target: they are the
README's table of backbones (``python -m benchmarks.bench_backbones`` prints it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import common

NAME = "backbones"

#: The reference every ratio is taken against.
REFERENCE = "vgg16"


def _batch(size: Any, batch_size: int) -> np.ndarray:
    """``batch_size`` real photos at ``size``, stacked (the photos repeat if there are fewer)."""
    paths = common.real_images("photos")
    paths = [paths[i % len(paths)] for i in range(batch_size)]
    return np.stack(common.decode_all(paths, size))


def _time_in_turn(backbones: dict[str, Any], batch: np.ndarray, warmup: int, batches: int
                  ) -> tuple[dict[str, list[float]], dict[str, tuple[int, int]]]:
    """Warm every backbone up, then time ``batches`` rounds of one batch per backbone.

    Returns
    -------
    times : dict
        Backbone name -> seconds per timed batch, round by round.
    maps : dict
        Backbone name -> (height, width) of the feature map it returned.
    """
    maps = {}
    for name, bb in backbones.items():
        for _ in range(warmup):
            out, _ = bb(batch)
        maps[name] = tuple(int(s) for s in out.shape[1:3])
    times: dict[str, list[float]] = {name: [] for name in backbones}
    for _ in range(batches):
        for name, bb in backbones.items():
            times[name].append(common.time_call(lambda bb=bb: bb(batch))[0])
    return times, maps


def run(
    *,
    size: Any = (224, 224),
    batch_size: int = 16,
    warmup: int = 2,
    batches: int = 6,
    weights: Any = None,
    precision: str = "float32",
) -> dict[str, Any]:
    """Time every registry backbone against VGG16.

    Parameters
    ----------
    size : (h, w), default=(224, 224)
        The network input.
    batch_size : int, default=16
    warmup : int, default=2
        Untimed batches per backbone first (at least 1: it also gives the map size).
    batches : int, default=6
        Timed rounds: one batch per backbone each.
    weights : None, "imagenet" or path, default=None
        None: the seeded random network of each backbone.
    precision : {"float32", "bfloat16"}, default="float32"

    Returns
    -------
    dict
        ``rows`` (one per backbone, VGG16's ratio 1 included) and ``backbones``: per name the
        layer, stride, channels, map size, images/s (median batch) and ratio to VGG16.
    """
    from gapsvm.core.sizes import format_size
    from gapsvm.network.backbone.build import get_backbone
    from gapsvm.network.backbone.registry import BACKBONES

    if warmup < 1 or batches < 1:
        raise ValueError(f"warmup and batches must be at least 1, got {warmup} and {batches}")
    names = [REFERENCE, *(n for n in BACKBONES if n != REFERENCE)]
    batch = _batch(size, batch_size)
    backbones = {n: get_backbone(n, weights, precision) for n in names}
    times, maps = _time_in_turn(backbones, batch, warmup, batches)
    ref = np.asarray(times[REFERENCE])
    where = (f"{format_size(size)}, batch {batch_size}, {precision}, "
             f"{'random' if weights is None else weights} weights")
    results, rows = {}, []
    for name in names:
        spec = BACKBONES[name]
        ratio = float(np.median(ref / np.asarray(times[name])))
        per_s = common.rate(batch_size, float(np.median(times[name])))
        results[name] = {"layer": spec.layer, "stride": spec.stride, "channels": spec.channels,
                         "map": maps[name], "images_per_s": per_s, "ratio": ratio,
                         "seconds": times[name]}
        rows.append(common.row(
            f"9. backbones: {name} throughput / {REFERENCE}'s", ratio, fmt=".2f", unit="x",
            detail=f"{per_s:.1f} vs {common.rate(batch_size, float(np.median(ref))):.1f} img/s "
            f"at {where}; map {maps[name][0]}x{maps[name][1]}, stride {spec.stride}, "
            f"{spec.channels} channels; median of {batches} rounds after {warmup} warm-up "
            "batches, the backbones in turn",
        ))
    return {"name": NAME, "rows": rows, "backbones": results, "size": format_size(size),
            "batch_size": batch_size, "precision": precision}


def markdown_table(out: dict[str, Any]) -> str:
    """The README's table of backbones from :func:`run`'s output."""
    lines = [
        f"| backbone | feature layer | stride | feature size | map at {out['size']} "
        f"| images/s at {out['size']} | vs VGG16 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, b in out["backbones"].items():
        lines.append(f"| `{name}` | `{b['layer']}` | {b['stride']} | {b['channels']} | "
                     f"{b['map'][0]}x{b['map'][1]} | {b['images_per_s']:.1f} | "
                     f"{b['ratio']:.1f}x |")
    return "\n".join(lines)


def main() -> dict[str, Any]:
    """``python -m benchmarks.bench_backbones``: the rows, then the README's table."""
    out = common.print_rows(run())
    print(f"\nCPU {common.cpu_model()} ({common.cpu_signature() or 'no signature'})\n")
    print(markdown_table(out))
    return out


if __name__ == "__main__":
    main()
