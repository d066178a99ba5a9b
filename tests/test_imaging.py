"""Tests of facever.imaging: decoding of every supported format, conversions, and refusals.

Every fixture is generated here with Pillow/numpy under ``tmp_path``; nothing external is read.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from facever import image_files, imaging
from facever.errors import FaceverError, ImageError
from facever.imaging import MAX_PIXELS, image_sha256, load_image, read_image_bytes

H, W = 32, 48  # multiples of 16 so the quadrants align with JPEG blocks
RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


def quadrants() -> np.ndarray:
    """(H, W, 3) uint8 RGB: red top-left, green top-right, blue bottom-left, yellow bottom-right."""
    img = np.zeros((H, W, 3), np.uint8)
    img[: H // 2, : W // 2] = RED
    img[: H // 2, W // 2 :] = GREEN
    img[H // 2 :, : W // 2] = BLUE
    img[H // 2 :, W // 2 :] = YELLOW
    return img


def quadrant_centres(img: np.ndarray) -> list[np.ndarray]:
    h, w = img.shape[:2]
    return [img[h // 4, w // 4], img[h // 4, 3 * w // 4], img[3 * h // 4, w // 4], img[3 * h // 4, 3 * w // 4]]


def assert_rgb_image(out: np.ndarray, shape: tuple[int, int]) -> None:
    assert isinstance(out, np.ndarray)
    assert out.shape == (*shape, 3)
    assert out.dtype == np.uint8
    assert out.flags.c_contiguous


def save(tmp_path: Path, filename: str, img: Image.Image, fmt: str | None = None, **kwargs) -> Path:
    path = tmp_path / filename
    img.save(path, fmt, **kwargs)
    return path


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def expect_error(source, *fragments: str, **kwargs) -> str:
    """Assert ``load_image(source)`` raises ImageError whose message contains every fragment."""
    with pytest.raises(ImageError) as info:
        load_image(source, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def png_claiming_size(width: int, height: int) -> bytes:
    """A real small grey PNG whose IHDR is patched (with a valid CRC) to claim ``width``×``height``."""
    data = bytearray(encode(Image.new("L", (8, 8)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


# ------------------------------------------------------------------------------------------------
# Formats
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "suffix", "kwargs", "tolerance"),
    [
        ("PNG", "png", {}, 0),
        ("BMP", "bmp", {}, 0),
        ("TIFF", "tif", {}, 0),
        ("PPM", "ppm", {}, 0),
        ("GIF", "gif", {}, 0),
        ("WEBP", "webp", {"lossless": True}, 0),
        ("WEBP", "webp", {"quality": 90}, 40),
        ("JPEG", "jpg", {"quality": 95}, 30),
    ],
)
def test_format_round_trip(tmp_path, fmt, suffix, kwargs, tolerance):
    src = quadrants()
    path = save(tmp_path, f"q.{suffix}", Image.fromarray(src), fmt, **kwargs)
    out = load_image(path)
    assert_rgb_image(out, (H, W))
    if tolerance == 0:
        np.testing.assert_array_equal(out, src)
    for got, want in zip(quadrant_centres(out), [RED, GREEN, BLUE, YELLOW]):
        assert np.abs(got.astype(int) - np.array(want)).max() <= tolerance, (got, want)


def test_str_path_and_pgm(tmp_path):
    grey = np.arange(H * W, dtype=np.uint32).reshape(H, W) % 256
    path = save(tmp_path, "g.pgm", Image.fromarray(grey.astype(np.uint8)))
    assert path.read_bytes()[:2] == b"P5"
    out = load_image(str(path))
    assert_rgb_image(out, (H, W))
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)


def test_gif_first_frame_only(tmp_path):
    frames = [Image.new("RGB", (W, H), colour) for colour in (RED, BLUE, GREEN)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    with Image.open(path) as img:
        assert img.n_frames == 3
    out = load_image(path)
    assert_rgb_image(out, (H, W))
    assert (out == RED).all()


@pytest.mark.parametrize(("orientation", "marker_at"), [(6, "top-right"), (8, "bottom-left"), (3, "bottom-right")])
def test_exif_orientation_applied(tmp_path, orientation, marker_at):
    # Stored W×H (landscape), red 16×16 marker in the stored top-left corner, rest grey.
    stored = np.full((H, W, 3), 128, np.uint8)
    stored[:16, :16] = RED
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(tmp_path, "rot.jpg", Image.fromarray(stored), "JPEG", exif=exif, quality=95)
    out = load_image(path)
    expected_shape = (H, W) if orientation == 3 else (W, H)
    assert_rgb_image(out, expected_shape)
    h, w = expected_shape
    corners = {"top-left": out[4, 4], "top-right": out[4, w - 5],
               "bottom-left": out[h - 5, 4], "bottom-right": out[h - 5, w - 5]}
    for corner, pixel in corners.items():
        is_red = pixel[0] > 200 and pixel[1] < 60 and pixel[2] < 60
        assert is_red == (corner == marker_at), (corner, pixel)


def test_broken_exif_does_not_make_image_unreadable(tmp_path):
    src = quadrants()
    exif = Image.Exif()
    exif[0x0112] = 99  # not a valid orientation
    path = save(tmp_path, "badexif.jpg", Image.fromarray(src), "JPEG", exif=exif, quality=95)
    out = load_image(path)
    assert_rgb_image(out, (H, W))


# ------------------------------------------------------------------------------------------------
# Pixel modes
# ------------------------------------------------------------------------------------------------


def test_grey_png(tmp_path):
    path = save(tmp_path, "grey.png", Image.new("L", (W, H), 77))
    out = load_image(path)
    assert_rgb_image(out, (H, W))
    assert (out == 77).all()


def test_one_bit_image(tmp_path):
    img = Image.new("1", (W, H), 0)
    img.paste(1, (0, 0, W // 2, H))
    path = save(tmp_path, "bits.png", img)
    out = load_image(path)
    assert_rgb_image(out, (H, W))
    assert (out[:, : W // 2] == 255).all()
    assert (out[:, W // 2 :] == 0).all()


def test_la_alpha_composited_on_white(tmp_path):
    la = np.zeros((H, W, 2), np.uint8)
    la[..., 0] = 100
    la[:, : W // 2, 1] = 255  # left opaque, right fully transparent
    path = save(tmp_path, "la.png", Image.fromarray(la, "LA"))
    out = load_image(path)
    assert_rgb_image(out, (H, W))
    assert (out[:, : W // 2] == 100).all()
    assert (out[:, W // 2 :] == 255).all()


def test_rgba_alpha_composited_on_white(tmp_path):
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = RED
    rgba[:, : W // 3, 3] = 255
    rgba[:, W // 3 : 2 * W // 3, 3] = 0
    rgba[:, 2 * W // 3 :, 3] = 128
    path = save(tmp_path, "rgba.png", Image.fromarray(rgba, "RGBA"))
    out = load_image(path)
    assert_rgb_image(out, (H, W))
    assert (out[:, : W // 3] == RED).all()
    assert (out[:, W // 3 : 2 * W // 3] == 255).all()
    # Half-transparent red over white: red stays 255, green/blue ≈ 255 * (1 - 128/255) = 127.
    assert (out[:, 2 * W // 3 :, 0] == 255).all()
    assert (np.abs(out[:, 2 * W // 3 :, 1:].astype(int) - 127) <= 1).all()


def test_palette_image(tmp_path):
    img = Image.fromarray(quadrants()).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    assert img.mode == "P"
    path = save(tmp_path, "pal.png", img)
    with Image.open(path) as reopened:
        assert reopened.mode == "P"
    np.testing.assert_array_equal(load_image(path), quadrants())


def test_palette_transparency_becomes_white(tmp_path):
    img = Image.new("P", (W, H), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * (254 * 3))
    img.paste(1, (W // 2, 0, W, H))
    path = save(tmp_path, "palt.png", img, transparency=1)
    out = load_image(path)
    assert_rgb_image(out, (H, W))
    assert (out[:, : W // 2] == RED).all()
    assert (out[:, W // 2 :] == 255).all()


def test_16_bit_png(tmp_path):
    values = np.array([[0, 257 * 100, 65535, 257 * 50]], dtype=np.uint16).repeat(4, axis=0)
    img = Image.fromarray(values)
    path = save(tmp_path, "deep.png", img)
    with Image.open(path) as reopened:
        assert reopened.mode.startswith("I")
    out = load_image(path)
    assert_rgb_image(out, (4, 4))
    np.testing.assert_array_equal(out[0, :, 0], [0, 100, 255, 50])
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_32_bit_integer_tiff(tmp_path):
    sixteen_bit = np.array([[0, 257 * 100, 65535]], dtype=np.int32)
    path = save(tmp_path, "i32.tif", Image.fromarray(sixteen_bit))
    with Image.open(path) as reopened:
        assert reopened.mode == "I"
    np.testing.assert_array_equal(load_image(path)[0, :, 0], [0, 100, 255])

    full_range = np.array([[-5, 2**30, 2**31 - 1]], dtype=np.int32)
    path = save(tmp_path, "i32full.tif", Image.fromarray(full_range))
    np.testing.assert_array_equal(load_image(path)[0, :, 0], [0, 128, 255])


def test_cmyk_images(tmp_path):
    cmyk = Image.new("CMYK", (W, H), (0, 255, 255, 0))  # red
    tiff = load_image(save(tmp_path, "cmyk.tif", cmyk))
    assert_rgb_image(tiff, (H, W))
    assert (tiff == RED).all()
    jpeg = load_image(save(tmp_path, "cmyk.jpg", cmyk, quality=95))
    assert_rgb_image(jpeg, (H, W))
    assert np.abs(jpeg.astype(int) - np.array(RED)).max() <= 10


# ------------------------------------------------------------------------------------------------
# Bytes, helpers
# ------------------------------------------------------------------------------------------------


def test_bytes_like_inputs_match_path(tmp_path):
    path = save(tmp_path, "q.png", Image.fromarray(quadrants()))
    data = path.read_bytes()
    from_path = load_image(path)
    for source in (data, bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(load_image(source), from_path)


def test_read_image_bytes_and_sha256(tmp_path):
    path = save(tmp_path, "q.png", Image.fromarray(quadrants()))
    data = read_image_bytes(path)
    assert data == path.read_bytes()
    digest = image_sha256(data)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(digest) == 64 and digest == digest.lower()
    assert image_sha256(data + b"x") != digest


def test_read_image_bytes_errors(tmp_path):
    with pytest.raises(ImageError, match="gone.png: file not found"):
        read_image_bytes(tmp_path / "gone.png", name="gone.png")
    with pytest.raises(ImageError, match="directory"):
        read_image_bytes(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        read_image_bytes(tmp_path / "empty.png")


def test_defaults_and_pillow_globals():
    assert MAX_PIXELS == 40_000_000
    assert imaging.MAX_FILE_BYTES == 100 * 2**20
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert issubclass(ImageError, FaceverError)


def test_wrong_source_type_is_type_error():
    with pytest.raises(TypeError, match="int"):
        load_image(42)


# ------------------------------------------------------------------------------------------------
# Arrays
# ------------------------------------------------------------------------------------------------


def test_uint8_rgb_array_is_copied_and_contiguous():
    src = quadrants()
    out = load_image(src)
    np.testing.assert_array_equal(out, src)
    assert not np.shares_memory(out, src)
    flipped = src[:, ::-1]  # a non-contiguous view
    out = load_image(flipped)
    assert_rgb_image(out, (H, W))
    np.testing.assert_array_equal(out, flipped)


@pytest.mark.parametrize("shape", [(H, W), (H, W, 1)])
def test_grey_arrays(shape):
    grey = (np.arange(H * W) % 256).astype(np.uint8).reshape(shape)
    out = load_image(grey)
    assert_rgb_image(out, (H, W))
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey.reshape(H, W))


def test_rgba_array_composited_on_white():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = BLUE
    rgba[0, :, 3] = 255
    out = load_image(rgba)
    assert_rgb_image(out, (2, 2))
    assert (out[0] == BLUE).all()
    assert (out[1] == 255).all()


def test_uint16_array():
    values = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    np.testing.assert_array_equal(load_image(values)[0, :, 0], [0, 100, 255])
    np.testing.assert_array_equal(load_image(values.astype(">u2"))[0, :, 0], [0, 100, 255])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_arrays(dtype):
    values = np.array([[0.0, 0.5, 1.0, 1.5, -0.2]], dtype=dtype)
    out = load_image(values)
    assert_rgb_image(out, (1, 5))
    np.testing.assert_array_equal(out[0, :, 0], [0, 128, 255, 255, 0])


def test_bool_array():
    mask = np.array([[True, False], [False, True]])
    out = load_image(mask)
    assert_rgb_image(out, (2, 2))
    np.testing.assert_array_equal(out[..., 0], [[255, 0], [0, 255]])


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint32, np.complex64, object])
def test_rejected_array_dtypes(dtype):
    expect_error(np.zeros((4, 4, 3), dtype=dtype), "<array>", "unsupported array dtype")


@pytest.mark.parametrize("shape", [(16,), (4, 4, 2), (4, 4, 5), (2, 4, 4, 3)])
def test_rejected_array_shapes(shape):
    expect_error(np.zeros(shape, np.uint8), "<array>", "unsupported array shape")


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 5), (5, 0, 1)])
def test_rejected_empty_arrays(shape):
    expect_error(np.zeros(shape, np.uint8), "<array>", "empty array")


def test_rejected_non_finite_float_array():
    values = np.zeros((2, 2), np.float32)
    values[0, 0] = np.nan
    expect_error(values, "frame.npy", "NaN", name="frame.npy")


def test_array_pixel_cap():
    expect_error(np.zeros((100, 100, 3), np.uint8), "<array>", "100x100 pixels exceeds the cap of 5000", max_pixels=5000)


# ------------------------------------------------------------------------------------------------
# Refusals of files and bytes
# ------------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.jpg"
    message = expect_error(path, "nope.jpg", "file not found")
    assert message == f"{path}: file not found"


def test_name_overrides_label(tmp_path):
    expect_error(tmp_path / "nope.jpg", "upload #3: file not found", name="upload #3")
    expect_error(b"hello world", "upload.txt: not a recognised image format", name="upload.txt")


def test_directory(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    expect_error(folder, str(folder), "directory")


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root or Windows ignore file modes")
def test_permission_denied(tmp_path):
    path = save(tmp_path, "secret.png", Image.fromarray(quadrants()))
    path.chmod(0)
    try:
        expect_error(path, "secret.png", "permission denied")
    finally:
        path.chmod(0o600)


def test_permission_error_mapping(tmp_path, monkeypatch):
    # Root ignores file modes, so simulate the OS refusing to open the file.
    path = save(tmp_path, "locked.png", Image.fromarray(quadrants()))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(image_files, "open", refuse, raising=False)
    assert expect_error(path, "locked.png") == f"{path}: permission denied"


def test_zero_byte_file_and_empty_bytes(tmp_path):
    path = tmp_path / "zero.jpg"
    path.write_bytes(b"")
    expect_error(path, "zero.jpg", "empty")
    expect_error(b"", "<bytes>", "empty")


def test_file_over_byte_limit_refused_before_reading(tmp_path, monkeypatch):
    path = save(tmp_path, "large.png", Image.fromarray(quadrants()))
    monkeypatch.setattr(image_files, "MAX_FILE_BYTES", 100)
    expect_error(path, "large.png", "larger than the limit of 100 bytes")


@pytest.mark.parametrize(("fmt", "suffix"), [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")])
def test_truncated_file(tmp_path, fmt, suffix):
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)  # incompressible, so half is really half
    data = encode(Image.fromarray(noisy), fmt)
    path = tmp_path / f"photo.{suffix}"
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, f"photo.{suffix}: ", "truncated or corrupt")


def test_corrupt_bytes_with_png_signature(tmp_path):
    data = b"\x89PNG\r\n\x1a\n" + np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8).tobytes()
    path = tmp_path / "corrupt.png"
    path.write_bytes(data)
    expect_error(path, "corrupt.png", "corrupt")
    expect_error(data, "<bytes>", "corrupt")


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("just some notes, not a picture\n" * 10)
    message = expect_error(path, "x.txt")
    assert message == f"{path}: not a recognised image format"


def test_disallowed_format_is_unsupported(tmp_path):
    path = save(tmp_path, "q.pcx", Image.fromarray(quadrants()), "PCX")
    expect_error(path, "q.pcx", "unsupported image format PCX")


def test_pixel_cap_on_small_real_image(tmp_path):
    path = save(tmp_path, "big.png", Image.fromarray(quadrants()))
    expect_error(path, f"big.png: {W}x{H} pixels exceeds the cap of 1000", max_pixels=1000)
    assert load_image(path, max_pixels=W * H).shape == (H, W, 3)


def test_crafted_header_is_refused_before_decoding(tmp_path):
    # 7000×7000 = 49 Mpx: over our default cap, under Pillow's own limits. The IDAT only holds 8×8
    # pixels, so getting the cap message (not "truncated") proves the size is checked before decoding.
    path = tmp_path / "big.png"
    path.write_bytes(png_claiming_size(7000, 7000))
    message = expect_error(path, "big.png")
    assert message == f"{path}: 7000x7000 pixels exceeds the cap of {MAX_PIXELS}"


def test_refusals_emit_no_warnings(tmp_path):
    # 10000×10000 = 100 Mpx is in the range where Pillow only *warns* (DecompressionBombWarning);
    # a truncated TIFF makes Pillow warn about corrupt metadata. The library must stay quiet.
    tiff = encode(Image.fromarray(quadrants()), "TIFF")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expect_error(png_claiming_size(10000, 10000), "10000x10000 pixels exceeds the cap")
        expect_error(tiff[:20], "truncated or corrupt")
    assert [str(w.message) for w in caught] == []


def test_decompression_bomb_refused_quickly_without_allocating(tmp_path):
    # A real 20000×20000 grey PNG of zeros would be a few hundred KiB on disk but 400 MB decoded.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming_size(20000, 20000))
    resource = pytest.importorskip("resource")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    message = expect_error(path, "bomb.png", "exceeds")
    elapsed = time.perf_counter() - started
    rss_growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert elapsed < 2.0
    assert rss_growth_kib < 100 * 1024  # far below the 400 MB the pixels would need
    assert "pixel" in message
    # Even with our cap lifted, Pillow's own decompression-bomb limit still refuses it.
    expect_error(path, "bomb.png", "exceeds", max_pixels=10**12)
