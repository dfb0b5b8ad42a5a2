"""The hostile-input corpus: every bad input gets a named error, and the rest of the work
completes; checked on the Python API and on the command line.

The corpus is generated here (nothing binary is committed): a class-folder dataset under a
path with a space and non-ASCII characters, holding good edge cases (grayscale, RGBA,
palette, 16-bit, EXIF-rotated, 1x1, 10x10, BMP/WebP/TIFF) and bad files (truncated and
corrupt JPEG/PNG, zero bytes, text named .jpg, a real 20000x20000 PNG and a JPEG header
claiming that size, a named pipe, a symbolic-link loop, an unreadable file, unsupported
formats, an empty class folder, a link to a parent folder).

The unreadable file: ``chmod 000`` does not stop root, whose CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH capabilities bypass file modes. When the tests run as root they drop those
two capabilities from the calling thread's effective set (threads it starts inherit that)
around the calls that read the corpus, so the kernel really refuses the read (EACCES); the
process stays root, so everything else it reads is unaffected. As any other user ``chmod 000``
is enough. Only where neither works is the refusal simulated by patching ``open``;
:func:`reading_as_user` yields which of the three it used.

The CLI is run in-process through :func:`gapsvm.cli.main` (the ``gapsvm`` entry point), so
one backbone build serves every case; the subprocess tests are in ``test_interrupt.py``.
"""

from __future__ import annotations

import builtins
import contextlib
import csv
import ctypes
import errno
import io
import os
import shutil
import stat
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression

from gapsvm import GapClassifier, GapFeaturizer, ImageReadError, ModelLoadError, load_model
from gapsvm.cli.main import main
from gapsvm.core.decode import MAX_PIXELS, decode_image, read_image
from gapsvm.core.scan import ScanProblem, load_directory
from gapsvm.network.backbone.build import get_backbone
from gapsvm.network.features_file import read_features_file, write_features_file
from gapsvm.utils.safe_load import safe_joblib_load

SIZE = (32, 32)  # two block5 cells: the smallest fixed size, the cheapest network pass


# -- generating the corpus -----------------------------------------------------------------
def _smooth(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random but smooth RGB image, so JPEG keeps it recognisable."""
    small = rng.integers(0, 256, (max(1, h // 8), max(1, w // 8), 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _encode(img: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def huge_png(w: int = 20000, h: int = 20000) -> bytes:
    """A real, valid PNG of w x h black pixels (1-bit grey, ~50 kB): decoded to RGB it would
    take w*h*3 bytes (1.2 GB at 20000x20000)."""
    row = (w + 7) // 8 + 1
    z = zlib.compressobj(9)
    parts = [z.compress(bytes(row * 500)) for _ in range(h // 500)]
    parts += [z.compress(bytes(row * (h % 500))), z.flush()]
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )  # fmt: skip


def _with_jpeg_size(jpeg: bytes, w: int, h: int) -> bytes:
    """The same JPEG with its frame header (SOF0) claiming another size."""
    i = jpeg.index(b"\xff\xc0")
    return jpeg[: i + 5] + struct.pack(">HH", h, w) + jpeg[i + 9 :]


GOOD = {  # relative path -> what it exercises
    "person/rgb.jpg": "plain JPEG",
    "person/space name.png": "space in the file name",
    "person/nön ascii é.png": "non-ASCII file name",
    "person/gray.png": "single-channel PNG",
    "person/gray.jpg": "single-channel JPEG",
    "person/rgba.png": "alpha channel",
    "person/palette.png": "palette PNG",
    "person/16bit.png": "16-bit PNG",
    "person/exif6.jpg": "EXIF Orientation=6",
    "person/tiny1x1.png": "1x1 image",
    "person/tiny10x10.png": "10x10 image",
    "not_person/n0.png": "PNG",
    "not_person/n1.jpg": "JPEG",
    "not_person/n2.bmp": "BMP",
    "not_person/n3.webp": "WebP",
    "not_person/n4.tiff": "TIFF",
}
#: Files a folder run computes nothing for: relative path -> reason the user sees.
BAD = {
    "person/truncated.jpg": "truncated JPEG (no end-of-image marker after the last scan)",
    "person/corrupt.jpg": "not a decodable image (corrupt or truncated JPEG data)",
    "person/zero.jpg": "empty file (0 bytes)",
    "person/notes.jpg": "not an image (the file holds text)",
    "person/huge.png": "image is 20000x20000 pixels, over the 268,435,456-pixel limit "
    "(downscale it first; decoding it would need 1.1 GiB)",
    "person/huge.jpg": "image is 20000x20000 pixels, over the 268,435,456-pixel limit",
    "person/pipe.jpg": "not a regular file (a pipe, socket or device)",
    "person/locked.png": "Permission denied",
    "not_person/truncated.png": "not a decodable image (corrupt or truncated PNG data)",
    "not_person/crc.png": "not a decodable image (corrupt or truncated PNG data)",
}
#: Paths the folder scan itself reports (never handed to the decoder).
SCAN = {
    "person/loop.jpg": "broken or looping symbolic link",
    "person/up": "symbolic link to a folder, not followed (a link loop would never end)",
    "person/phone.heic": "unsupported image format .heic (gapsvm reads .bmp, .jpeg, .jpg, "
    ".pbm, .pgm, .png, .ppm, .tif, .tiff, .webp); convert it to JPEG or PNG",
    "not_person/old.tga": "unsupported image format .tga",
    "empty": "class folder holds no images",
}
#: What read_image says when handed a SCAN file directly.
SCAN_DIRECT = {
    "person/loop.jpg": "Too many levels of symbolic links",
    "person/phone.heic": "unsupported format (HEIF/HEIC); convert it to JPEG or PNG",
    "not_person/old.tga": "not a decodable image (unknown or unsupported format)",
}


class Corpus:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "dätä set"  # the folder itself has a space and non-ASCII letters
        self.originals: dict[str, np.ndarray] = {}

    def p(self, rel: str) -> Path:
        return self.data / rel

    def good_paths(self) -> list[str]:
        return sorted(str(self.p(r)) for r in GOOD)


def build_corpus(base: Path) -> Corpus:
    c = Corpus(base)
    rng = np.random.default_rng(20240611)
    for d in ("person", "not_person", "empty"):
        c.p(d).mkdir(parents=True)

    def put(rel: str, data: bytes, original: np.ndarray | None = None) -> None:
        c.p(rel).write_bytes(data)
        if original is not None:
            c.originals[rel] = original

    rgb = _smooth(rng, 40, 48)
    put("person/rgb.jpg", _encode(rgb, "JPEG", quality=95))
    for rel in ("person/space name.png", "person/nön ascii é.png"):
        img = _smooth(rng, 36, 30)
        put(rel, _encode(img, "PNG"), img)
    gray = _smooth(rng, 34, 40)[..., 1]
    put("person/gray.png", _encode(gray, "PNG"), gray)
    put("person/gray.jpg", _encode(gray, "JPEG", quality=95), gray)
    rgba = np.dstack([_smooth(rng, 33, 35), rng.integers(0, 256, (33, 35), dtype=np.uint8)])
    put("person/rgba.png", _encode(rgba, "PNG"), rgba)
    pal = Image.fromarray(_smooth(rng, 40, 40)).convert("P", palette=Image.Palette.ADAPTIVE)
    buf = io.BytesIO()
    pal.save(buf, "PNG")
    put("person/palette.png", buf.getvalue(), np.asarray(pal.convert("RGB")))
    deep = rng.integers(0, 65536, (32, 36, 3), dtype=np.uint16)
    ok, enc = cv2.imencode(".png", deep[..., ::-1])  # OpenCV writes BGR
    assert ok
    put("person/16bit.png", enc.tobytes(), deep)
    upright = _smooth(rng, 40, 56)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the stored pixels must be turned 90 degrees clockwise
    put("person/exif6.jpg", _encode(upright, "JPEG", quality=95, exif=exif), upright)
    put("person/tiny1x1.png", _encode(rgb[:1, :1], "PNG"), rgb[:1, :1])
    put("person/tiny10x10.png", _encode(rgb[:10, :10], "PNG"), rgb[:10, :10])
    for i, fmt in enumerate(("PNG", "JPEG", "BMP", "WEBP", "TIFF")):
        ext = {"JPEG": "jpg", "TIFF": "tiff"}.get(fmt, fmt.lower())
        img = _smooth(rng, 32 + 4 * i, 40)
        put(f"not_person/n{i}.{ext}", _encode(img, fmt), img)

    jpeg = _encode(_smooth(rng, 48, 48), "JPEG", quality=90)
    png = _encode(_smooth(rng, 48, 48), "PNG")
    put("person/truncated.jpg", jpeg[: len(jpeg) // 2])
    put("person/corrupt.jpg", jpeg[:2] + rng.integers(0, 256, 300, np.uint8).tobytes()
        + jpeg[302:])
    put("person/zero.jpg", b"")
    put("person/notes.jpg", b"shopping list: milk, eggs\nthis is not a photo\n" * 10)
    put("person/huge.png", huge_png())
    put("person/huge.jpg", _with_jpeg_size(jpeg, 20000, 20000))
    os.mkfifo(c.p("person/pipe.jpg"))
    put("person/locked.png", png)
    put("not_person/truncated.png", png[: len(png) // 2])
    put("not_person/crc.png", png[:29] + bytes([png[29] ^ 0xFF]) + png[30:])  # IHDR CRC
    os.symlink("loop.jpg", c.p("person/loop.jpg"))
    os.symlink("..", c.p("person/up"))
    put("person/phone.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    put("not_person/old.tga", _encode(_smooth(rng, 20, 20), "TGA"))
    os.chmod(c.p("person/locked.png"), 0)
    return c


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def work(tmp_path):
    """A fresh folder for caches and outputs."""
    return tmp_path


@pytest.fixture(scope="module")
def backbone():
    return get_backbone("vgg16", None)


def _featurizer(cache_dir, input_size=SIZE) -> GapFeaturizer:
    return GapFeaturizer(weights=None, input_size=input_size, cache_dir=cache_dir, verbose=0,
                         batch_size=8).fit()


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_DAC_BYPASS = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


def _set_dac_bypass(enabled: bool) -> bool:
    """Switch root's file-mode bypass for this thread (Linux capset); False if impossible."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3
        if libc.capget(ctypes.byref(header), data) != 0:
            return False
        if enabled:
            data[0].effective |= data[0].permitted & _DAC_BYPASS
        else:
            data[0].effective &= ~_DAC_BYPASS
        return libc.capset(ctypes.byref(header), data) == 0
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def reading_as_user(locked: Path):
    """Run the block so that ``locked`` (mode 000) cannot be read, as for a normal user;
    yields how: "chmod" (not root), "capabilities" (root) or "patch" (simulated)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        yield "chmod"
    elif _set_dac_bypass(False):
        try:
            yield "capabilities"
        finally:
            assert _set_dac_bypass(True), "could not restore CAP_DAC_OVERRIDE"
    else:
        real_open = builtins.open

        def fake_open(file, *a, **kw):
            if isinstance(file, str | os.PathLike) and Path(file) == locked:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
            return real_open(file, *a, **kw)

        builtins.open = fake_open
        try:
            yield "patch"
        finally:
            builtins.open = real_open


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


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
    import gapsvm.images as gi

    rng = np.random.default_rng(1)
    img = _smooth(rng, 24, 40)
    cases = {
        "PNG": _encode(img, "PNG"), "JPEG": _encode(img, "JPEG"), "BMP": _encode(img, "BMP"),
        "TIFF": _encode(img, "TIFF"), "WebP lossy": _encode(img, "WEBP", quality=80),
        "WebP lossless": _encode(img, "WEBP", lossless=True),
        "WebP extended": _encode(np.dstack([img, img[..., 0]]), "WEBP", quality=80),
        "PPM": _encode(img, "PPM"), "GIF": _encode(img, "GIF"),
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
    out = subprocess.run([sys.executable, "-c", code, *files], capture_output=True, text=True,
                         timeout=300, check=True).stdout.splitlines()
    assert out[0].startswith("REFUSED image is 20000x20000 pixels") and out[1].startswith(
        "REFUSED image is 20000x20000 pixels"
    ), out
    peak_mb = int(out[-1]) / 1024  # Linux reports kB
    assert peak_mb < 600, f"peak RSS {peak_mb:.0f} MB: the image was decoded"


# -- folder runs: API ----------------------------------------------------------------------
def _rel(corpus: Corpus, path: str) -> str:
    return Path(os.path.relpath(path, corpus.data)).as_posix()


def test_folder_scan_reports_what_it_cannot_use(corpus):
    problems: list[ScanProblem] = []
    paths, _, classes = load_directory(corpus.data, problems)
    assert classes == ["not_person", "person"]  # the empty class folder is not a class
    assert {_rel(corpus, p) for p in paths} == set(GOOD) | set(BAD)
    got = {_rel(corpus, p.path): p.reason for p in problems}
    assert set(got) == set(SCAN)
    for rel, want in SCAN.items():
        assert got[rel].startswith(want), (rel, got[rel])


def test_api_folder_run_names_every_bad_file_and_computes_all_good_ones(corpus, work, backbone):
    paths, _, _ = load_directory(corpus.data)
    fz = _featurizer(work / "cache")
    with reading_as_user(corpus.p("person/locked.png")):
        res = fz.extract(paths, on_error="skip")
    got = {_rel(corpus, e.path): e.reason for e in res.errors}
    assert set(got) == set(BAD)
    for rel, want in BAD.items():
        assert got[rel].startswith(want), (rel, got[rel])
    ok = {_rel(corpus, p) for p, k in zip(paths, res.ok, strict=True) if k}
    assert ok == set(GOOD) and res.n_computed == len(GOOD)
    assert np.all(np.isfinite(res.gap[res.ok])) and np.all(np.isnan(res.gap[~res.ok]))
    hw = {_rel(corpus, p): h for p, h in zip(paths, res.image_hw, strict=True)}
    assert hw["person/exif6.jpg"] == (56, 40)  # the rotated size
    assert hw["person/tiny1x1.png"] == (1, 1)
    # Same pixels, same features: the non-ASCII name is only a name.
    i = paths.index(str(corpus.p("person/nön ascii é.png")))
    want = fz.transform([read_image(paths[i])])[0]
    np.testing.assert_allclose(res.gap[i], want, rtol=1e-5, atol=1e-6)

    # on_error="raise" (the default): every readable image is computed and cached first,
    # then one error names the first bad file and counts the others.
    with reading_as_user(corpus.p("person/locked.png")), pytest.raises(ImageReadError) as info:
        fz.transform(paths)
    assert len(info.value.errors) == len(BAD)
    assert f"(and {len(BAD) - 1} more unreadable: " in str(info.value)
    before = backbone.images_run
    again = fz.extract(corpus.good_paths())
    assert again.n_computed == 0 and backbone.images_run == before  # nothing was lost


def test_fit_with_a_bad_file_keeps_the_finished_work(corpus, work, backbone):
    good = corpus.good_paths()
    paths = [*good, str(corpus.p("person/truncated.jpg"))]
    y = ["person" if "/person/" in p else "not_person" for p in paths]
    clf = GapClassifier(LogisticRegression(), weights=None, input_size=SIZE,
                        cache_dir=work / "cache")
    with pytest.raises(ImageReadError, match=r"truncated\.jpg.*truncated JPEG"):
        clf.fit(paths, y)
    before = backbone.images_run
    clf.fit(good, y[:-1])  # the user drops the bad file: nothing is computed twice
    assert backbone.images_run == before


@pytest.mark.parametrize("input_size", [None, 2.0, 0.5])
def test_images_smaller_than_a_feature_cell_are_upscaled(corpus, work, input_size):
    """Native size and scale factors upscale (aspect kept) to a 32-px shorter side, i.e. two
    stride-16 cells; a fixed (h, w) is used as given."""
    fz = _featurizer(work / "cache", input_size=input_size)
    tall = np.zeros((10, 40, 3), np.uint8)
    res = fz.extract([str(corpus.p("person/tiny1x1.png")), str(corpus.p("person/tiny10x10.png")),
                      tall], maps=True)
    scale = 1.0 if input_size is None else input_size
    assert res.input_hw[0] == (32, 32) and res.input_hw[1] == (32, 32)
    short = 10 * scale
    want_w = round(40 * scale * (32 / short)) if short < 32 else round(40 * scale)
    assert res.input_hw[2] == (32, want_w)
    assert [m.shape[:2] for m in res.maps] == [(2, 2), (2, 2), (2, want_w // 16)]
    assert np.all(np.isfinite(res.gap))


# -- labels, targets, mismatched files, newer models: API -----------------------------------
def test_one_class_and_wrong_length_labels_fail_before_any_image_is_computed(corpus, backbone):
    fresh = [np.full((32, 32, 3), v, np.uint8) for v in (3, 5, 7)]  # never cached anywhere
    clf = GapClassifier(weights=None, input_size=SIZE, cache_dir=None)
    before = backbone.images_run
    with pytest.raises(ValueError, match=r"got 2 labels for 3 images: one label per image"):
        clf.fit(fresh, ["a", "b"])
    with pytest.raises(ValueError, match=r"need at least two classes to train a classifier, "
                       r"got only array\(\['a'\]"):
        clf.fit(fresh, ["a", "a", "a"])
    assert backbone.images_run == before


@pytest.fixture(scope="module")
def model_file(corpus, backbone, tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    good = corpus.good_paths()
    y = ["person" if "/person/" in p else "not_person" for p in good]
    clf = GapClassifier(LogisticRegression(), weights=None, input_size=SIZE,
                        cache_dir=d / "cache").fit(good, y)
    path = d / "model.skops"
    clf.save(path)
    return path


def test_unknown_cam_target_is_refused_before_any_image_is_computed(model_file, backbone):
    clf = load_model(model_file)
    before = backbone.images_run
    with pytest.raises(ValueError, match=r"unknown target class 'cat'; the model's classes "
                       r"are \['not_person', 'person'\]"):
        clf.cam([np.full((32, 32, 3), 9, np.uint8)], target="cat")
    assert backbone.images_run == before


def test_features_from_other_weights_or_input_size_are_refused(corpus, work, model_file):
    fz = _featurizer(work / "cache")
    X = fz.transform(corpus.good_paths())
    y = ["person" if "/person/" in p else "not_person" for p in corpus.good_paths()]
    meta = fz.metadata()
    with pytest.raises(ValueError, match=r"the features were computed with weights "
                       r"'random\(seed=0\)', but this model has weights='imagenet'"):
        GapClassifier(weights="imagenet", input_size=SIZE).fit_features(X, y, meta)
    with pytest.raises(ValueError, match=r"the features were computed at input size 32x32, "
                       r"but this model has input_size 64x64"):
        GapClassifier(weights=None, input_size=(64, 64)).fit_features(X, y, meta)


def _newer(model_file: Path, dest: Path) -> Path:
    clf = load_model(model_file)
    clf.feature_meta_ = {**clf.feature_meta_, "gapsvm_version": "99.1.0"}
    clf.save(dest)
    return dest


def test_model_from_a_newer_gapsvm_is_refused(model_file, tmp_path):
    newer = _newer(model_file, tmp_path / "newer.skops")
    with pytest.raises(ModelLoadError, match=r"was written by gapsvm 99.1.0, newer than this "
                       r"gapsvm .*; upgrade gapsvm to load it"):
        load_model(newer)


# -- the same cases on the command line ----------------------------------------------------
def test_cli_folder_run_reports_every_bad_file_and_writes_the_rest(corpus, work, capsys):
    out, errs = work / "features.joblib", work / "errors.csv"
    with reading_as_user(corpus.p("person/locked.png")):
        rc, stdout, stderr = run_cli(
            capsys, "features", corpus.data, "--weights", "none", "--input-size", "32x32",
            "--cache-dir", work / "cache", "--out", out, "--errors", errs, "-q",
        )
    assert rc == 0, stderr
    n_bad = len(BAD) + len(SCAN)
    assert f"{len(GOOD)} images -> {out} ({len(GOOD)} computed, 0 from cache" in stdout
    lines = stderr.splitlines()
    assert f"{n_bad} file(s) skipped:" in lines
    for rel, want in {**BAD, **SCAN}.items():
        assert any(ln.startswith(f"  {rel}: {want}") for ln in lines), (rel, stderr)
    with open(errs, newline="", encoding="utf-8") as fh:
        rows = {r["path"]: r["reason"] for r in csv.DictReader(fh)}
    assert set(rows) == set(BAD) | set(SCAN)
    for rel, want in {**BAD, **SCAN}.items():
        assert rows[rel].startswith(want)
    data = read_features_file(out)
    assert sorted(data["paths"]) == sorted(GOOD) and data["X"].shape == (len(GOOD), 512)
    assert {e["path"]: e["reason"] for e in data["errors"]} == rows  # same list, in the file
    hw = {p: tuple(h) for p, h in zip(data["paths"], data["image_hw"], strict=True)}
    assert hw["person/exif6.jpg"] == (56, 40) and hw["person/tiny1x1.png"] == (1, 1)

    # --strict: the same complete file, but a failing exit status.
    with reading_as_user(corpus.p("person/locked.png")):
        rc, stdout, _ = run_cli(
            capsys, "features", corpus.data, "--weights", "none", "--input-size", "32x32",
            "--cache-dir", work / "cache", "--out", work / "strict.joblib", "--strict", "-q",
        )
    assert rc == 1 and f"0 computed, {len(GOOD)} from cache" in stdout
    np.testing.assert_array_equal(read_features_file(work / "strict.joblib")["X"], data["X"])


def test_cli_folder_with_nothing_usable_fails_and_still_lists_why(corpus, work, capsys):
    bad = work / "all bad"
    bad.mkdir()
    for rel in ("person/zero.jpg", "person/notes.jpg", "not_person/crc.png"):
        shutil.copyfile(corpus.p(rel), bad / Path(rel).name)
    rc, _, stderr = run_cli(capsys, "features", bad, "--weights", "none", "--input-size",
                            "32x32", "--cache-dir", work / "c", "--out", work / "f.joblib",
                            "--errors", work / "e.csv", "-q")
    assert rc == 1
    assert f"gapsvm features: error: no usable image in {str(bad)!r}; nothing written" in stderr
    assert "  zero.jpg: empty file (0 bytes)" in stderr
    assert not (work / "f.joblib").exists()
    assert len(list(csv.DictReader(open(work / "e.csv", encoding="utf-8")))) == 3


def test_cli_an_empty_error_csv_is_still_written(corpus, work, capsys):
    flat = work / "flat"
    flat.mkdir()
    shutil.copyfile(corpus.p("not_person/n0.png"), flat / "a.png")
    rc, _, _ = run_cli(capsys, "features", flat, "--weights", "none", "--input-size", "32x32",
                       "--cache-dir", work / "c", "--out", work / "f.joblib", "--errors",
                       work / "e.csv", "-q")
    assert rc == 0 and (work / "e.csv").read_text(encoding="utf-8").strip() == "path,reason"


def test_cli_tiny_images_at_native_size_are_upscaled(corpus, work, capsys):
    tiny = work / "tiny"
    tiny.mkdir()
    for rel in ("person/tiny1x1.png", "person/tiny10x10.png"):
        shutil.copyfile(corpus.p(rel), tiny / Path(rel).name)
    rc, stdout, stderr = run_cli(capsys, "features", tiny, "--weights", "none", "--input-size",
                                 "native", "--cache-dir", work / "c", "--out",
                                 work / "t.joblib", "-q")
    assert rc == 0 and "2 images -> " in stdout and stderr == ""
    data = read_features_file(work / "t.joblib")
    assert [tuple(h) for h in data["image_hw"]] == [(10, 10), (1, 1)]
    assert np.all(np.isfinite(data["X"]))
    # What the network saw, as the cache records it: two stride-16 cells a side.
    seen = [safe_joblib_load(p)["input_hw"] for p in (work / "c").rglob("*.joblib")]
    assert sorted(seen) == [(32, 32), (32, 32)]


def test_cli_one_class_and_damaged_label_files(corpus, work, capsys):
    one = work / "one"
    (one / "person").mkdir(parents=True)
    for rel in ("person/rgb.jpg", "person/gray.png"):
        shutil.copyfile(corpus.p(rel), one / rel)
    feats = work / "one.joblib"
    rc, stdout, _ = run_cli(capsys, "features", one, "--weights", "none", "--input-size",
                            "32x32", "--cache-dir", work / "c", "--out", feats, "-q")
    assert rc == 0 and "classes: person (2)" in stdout  # one class is fine for features
    rc, _, stderr = run_cli(capsys, "train", feats, "--out", work / "m.skops")
    assert rc == 1
    assert f"gapsvm train: error: {feats} has a single class ['person']: need two or more" in (
        stderr
    )
    assert not (work / "m.skops").exists()

    # Labels of the wrong length (a hand-edited or damaged features file).
    data = read_features_file(feats)
    write_features_file(work / "bad.joblib", {**data, "y": np.array(["person"] * 3)})
    with pytest.raises(ValueError, match="is damaged: 3 labels for 2 feature rows"):
        read_features_file(work / "bad.joblib")
    rc, _, stderr = run_cli(capsys, "train", work / "bad.joblib", "--out", work / "m.skops")
    assert rc == 1 and "is damaged: 3 labels for 2 feature rows" in stderr


def test_cli_features_from_other_weights_are_refused_at_train(corpus, work, capsys):
    feats = work / "f.joblib"
    run_cli(capsys, "features", corpus.data / "not_person", "--weights", "none",
            "--input-size", "32x32", "--cache-dir", work / "c", "--out", feats, "-q")
    data = read_features_file(feats)
    two = {**data, "y": np.array(["a", "b"] * (len(data["X"]) // 2)
                                 + ["a"] * (len(data["X"]) % 2))}
    write_features_file(feats, two)
    rc, _, stderr = run_cli(capsys, "train", feats, "--weights", "imagenet", "--cv", "0",
                            "--out", work / "m.skops")
    assert rc == 1
    assert ("gapsvm train: error: the features were computed with weights 'random(seed=0)', "
            "but this model has weights='imagenet'") in stderr
    assert not (work / "m.skops").exists()


def test_cli_predict_and_cam_on_the_corpus(corpus, work, model_file, capsys, backbone):
    with reading_as_user(corpus.p("person/locked.png")):
        rc, stdout, stderr = run_cli(capsys, "predict", model_file, corpus.data, "--csv",
                                     "--cache-dir", work / "c")
    assert rc == 0, stderr
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert len(rows) == len(GOOD)
    for rel, want in BAD.items():
        assert f"{corpus.p(rel)}: {want}" in stderr, rel

    before = backbone.images_run
    rc, _, stderr = run_cli(capsys, "cam", model_file, corpus.data, "--target", "cat",
                            "--out", work / "cams", "--cache-dir", work / "c2", "-q")
    assert rc == 1
    assert ("gapsvm cam: error: unknown --target 'cat'; the model's classes are "
            "['not_person', 'person']") in stderr
    assert backbone.images_run == before and not any((work / "cams").rglob("*.png"))


def test_cli_model_from_a_newer_gapsvm_is_refused(corpus, model_file, tmp_path, capsys):
    newer = _newer(model_file, tmp_path / "newer.skops")
    rc, _, stderr = run_cli(capsys, "predict", newer, corpus.p("not_person/n0.png"))
    assert rc == 1
    assert f"gapsvm predict: error: {newer} was written by gapsvm 99.1.0, newer than" in stderr


def test_a_fifo_never_blocks_a_run(corpus, work, backbone):
    # If a named pipe were opened for reading, this would hang until the suite timeout.
    fz = _featurizer(work / "cache")
    res = fz.extract([str(corpus.p("person/pipe.jpg")), str(corpus.p("not_person/n0.png"))],
                     on_error="skip")
    assert res.ok.tolist() == [False, True]
    assert stat.S_ISFIFO(os.stat(corpus.p("person/pipe.jpg")).st_mode)


