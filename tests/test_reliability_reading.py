"""The hostile-input corpus (``_corpus.py``) read file by file and folder by folder: every
bad file gets a named error with its reason, every good edge case its exact pixels, and no
file is decoded past the pixel limit. Pure core: no network is built here; the same corpus
through feature extraction and the command line is ``test_reliability.py``.
"""

from __future__ import annotations

import os
import shutil
import struct
import textwrap

import cv2
import numpy as np
import pytest
from _corpus import BAD, GOOD, SCAN, SCAN_DIRECT, encode, reading_as_user, smooth_image
from _helpers import fresh_python

from gapsvm import ImageReadError
from gapsvm.core.decode import MAX_PIXELS, decode_image, read_image
from gapsvm.core.scan import ScanProblem, load_directory


# -- single files: read_image --------------------------------------------------------------
@pytest.mark.parametrize("rel", sorted(BAD) + sorted(SCAN_DIRECT))
def test_read_image_names_the_file_and_the_reason(corpus, rel):
    path = corpus.p(rel)
    with reading_as_user(corpus.p("person/locked.png")), pytest.raises(ImageReadError) as info:
        read_image(path)
    err = info.value
    want = {**BAD, **SCAN_DIRECT}[rel]
    assert err.path == str(path)
    assert err.reason.startswith(want), err.reason
    assert str(err) == f"cannot read image {str(path)!r}: {err.reason}"


def test_unreadable_file_is_really_refused_by_the_system(corpus):
    # Not a test of gapsvm: proves the "locked" case above is real and not a root artefact.
    locked = corpus.p("person/locked.png")
    with reading_as_user(locked) as mode, pytest.raises(PermissionError):
        open(locked, "rb").close()
    print(f"unreadable file made unreadable by: {mode}")


def test_grayscale_alpha_palette_and_16bit_become_plain_rgb(corpus):
    gray = corpus.originals["person/gray.png"]
    np.testing.assert_array_equal(read_image(corpus.p("person/gray.png")), np.dstack([gray] * 3))
    g = read_image(corpus.p("person/gray.jpg"))
    assert g.shape == (*gray.shape, 3)
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
    assert np.abs(g[..., 0].astype(int) - gray).mean() < 3  # lossy, but the same picture
    rgba = corpus.originals["person/rgba.png"]
    # Alpha dropped, colours not premultiplied: what PIL's convert("RGB") and Keras give.
    np.testing.assert_array_equal(read_image(corpus.p("person/rgba.png")), rgba[..., :3])
    np.testing.assert_array_equal(
        read_image(corpus.p("person/palette.png")), corpus.originals["person/palette.png"]
    )
    deep = corpus.originals["person/16bit.png"]
    want = np.floor(deep / 257.0 + 0.5).astype(np.uint8)  # 65535 -> 255, full range kept
    np.testing.assert_array_equal(read_image(corpus.p("person/16bit.png")), want)
    for rel in ("not_person/n0.png", "not_person/n2.bmp", "not_person/n4.tiff"):
        np.testing.assert_array_equal(read_image(corpus.p(rel)), corpus.originals[rel])


def test_exif_orientation_is_applied_as_browsers_do(corpus):
    upright = corpus.originals["person/exif6.jpg"]  # 40 x 56, stored with Orientation=6
    got = read_image(corpus.p("person/exif6.jpg")).astype(int)
    assert got.shape == (56, 40, 3)
    cw = np.rot90(upright, k=-1).astype(int)  # what a browser shows for Orientation=6
    ccw = np.rot90(upright, k=1).astype(int)
    err_cw, err_ccw = np.abs(got - cw).mean(), np.abs(got - ccw).mean()
    assert err_cw < 4 < err_ccw, (err_cw, err_ccw)


def test_non_ascii_and_space_paths_read_the_same_pixels(corpus, tmp_path):
    for rel in ("person/space name.png", "person/nön ascii é.png"):
        np.testing.assert_array_equal(read_image(corpus.p(rel)), corpus.originals[rel])
        plain = tmp_path / "plain.png"
        shutil.copyfile(corpus.p(rel), plain)
        np.testing.assert_array_equal(read_image(corpus.p(rel)), read_image(plain))


def test_the_size_limit_reads_the_header_of_every_format(monkeypatch, corpus):
    """Each format's header parser, through behaviour: with a tiny limit, a 40x(32+4i) image
    must be refused and named with its own width x height (never decoded)."""
    import gapsvm.core.decode as gi

    rng = np.random.default_rng(1)
    img = smooth_image(rng, 24, 40)
    cases = {
        "PNG": encode(img, "PNG"), "JPEG": encode(img, "JPEG"), "BMP": encode(img, "BMP"),
        "TIFF": encode(img, "TIFF"), "WebP lossy": encode(img, "WEBP", quality=80),
        "WebP lossless": encode(img, "WEBP", lossless=True),
        "WebP extended": encode(np.dstack([img, img[..., 0]]), "WEBP", quality=80),
        "PPM": encode(img, "PPM"), "GIF": encode(img, "GIF"),
    }  # fmt: skip
    cases["PGM"] = cv2.imencode(".pgm", img[..., 0])[1].tobytes()
    # A JPEG whose frame header comes after 128 kB of metadata segments: still found.
    app = b"\xff\xef" + struct.pack(">H", 65535) + bytes(65533)
    cases["JPEG, SOF after 128 kB"] = cases["JPEG"][:2] + app + app + cases["JPEG"][2:]
    for kind, data in cases.items():
        if kind != "GIF":  # OpenCV decodes GIF only from 4.11 on
            assert decode_image(data, kind).shape == (24, 40, 3), kind
    monkeypatch.setattr(gi, "MAX_PIXELS", 100)
    for kind, data in cases.items():
        with pytest.raises(ImageReadError, match="image is 40x24 pixels") as info:
            gi.decode_image(data, kind)
        assert info.value.path == kind


def test_a_20000x20000_png_is_refused_without_the_memory_it_would_take(corpus):
    """Bounded memory, measured: a fresh interpreter reads the 50 kB file that decodes to
    1.2 GB and reports its peak RSS (decoding it for real peaks at about 2.4 GB here)."""
    code = textwrap.dedent(
        """
        import sys
        from gapsvm.images import ImageReadError, read_image
        for p in sys.argv[1:]:
            try:
                read_image(p)
                print("DECODED", p)
            except ImageReadError as e:
                print("REFUSED", e.reason)
        # VmHWM, not ru_maxrss: Linux carries the parent's ru_maxrss into a forked child,
        # so under a large pytest process ru_maxrss reports pytest's size, not ours.
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                print(line.split()[1])
        """
    )
    files = [str(corpus.p("person/huge.png")), str(corpus.p("person/huge.jpg"))]
    assert os.path.getsize(files[0]) < 100_000 and 20000 * 20000 > MAX_PIXELS
    out = fresh_python(code, *files).stdout.splitlines()
    assert out[0].startswith("REFUSED image is 20000x20000 pixels") and out[1].startswith(
        "REFUSED image is 20000x20000 pixels"
    ), out
    peak_mb = int(out[-1]) / 1024  # Linux reports kB
    assert peak_mb < 600, f"peak RSS {peak_mb:.0f} MB: the image was decoded"


# -- folder scan --------------------------------------------------------------------------
def test_folder_scan_reports_what_it_cannot_use(corpus):
    problems: list[ScanProblem] = []
    paths, _, classes = load_directory(corpus.data, problems)
    assert classes == ["not_person", "person"]  # the empty class folder is not a class
    assert {corpus.rel(p) for p in paths} == set(GOOD) | set(BAD)
    got = {corpus.rel(p.path): p.reason for p in problems}
    assert set(got) == set(SCAN)
    for rel, want in SCAN.items():
        assert got[rel].startswith(want), (rel, got[rel])
