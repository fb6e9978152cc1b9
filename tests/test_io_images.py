"""k3dn.io: round trips, the two reading protocols, grey/alpha handling, corrupt files, atomic writes."""

import os

import cv2
import numpy as np
import pytest

from k3dn.io import ImageError, read_image, read_pair, read_raw, to_float, write_png8, write_png16


def _rgb16(rng, h=9, w=11):
    return rng.integers(0, 65536, size=(h, w, 3), dtype=np.uint16)


def test_png16_roundtrip_exact(tmp_path, rng):
    raw = _rgb16(rng)
    img = raw.astype(np.float64) / 65535
    p = write_png16(tmp_path / "a.png", img)
    assert np.array_equal(read_raw(p), raw)
    back = read_image(p)
    assert back.dtype == np.float32 and back.shape == (9, 11, 3)
    assert np.array_equal(back, (raw.astype(np.float32) / np.float32(65535)))


def test_png8_roundtrip_exact(tmp_path, rng):
    raw = rng.integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    p = write_png8(tmp_path / "a.png", raw / 255.0)
    assert np.array_equal(read_raw(p), raw)
    # an 8-bit file reads the same under both protocols
    assert np.array_equal(read_image(p, "16bit"), read_image(p, "8bit"))
    assert np.allclose(read_image(p), raw / 255.0, atol=1e-7)


def test_rgb_order_matches_opencv_bgr(tmp_path):
    bgr = np.zeros((2, 2, 3), np.uint16)
    bgr[..., 0] = 100  # blue
    bgr[..., 2] = 60000  # red
    p = tmp_path / "c.png"
    cv2.imwrite(str(p), bgr)
    rgb = read_raw(p)
    assert rgb[0, 0].tolist() == [60000, 0, 100]


def test_write_rounds_and_clips(tmp_path):
    img = np.array([[-0.5, 0.0, 0.4 / 65535, 0.6 / 65535, 1.0, 7.0]])
    raw = read_raw(write_png16(tmp_path / "r.png", img))[..., 0]
    assert raw.tolist() == [[0, 0, 0, 1, 65535, 65535]]


def test_write_rejects_nan_and_bad_shape(tmp_path):
    with pytest.raises(ImageError, match="NaN"):
        write_png16(tmp_path / "n.png", np.full((3, 3), np.nan))
    with pytest.raises(ImageError, match="shape"):
        write_png16(tmp_path / "s.png", np.zeros((3, 3, 2)))
    assert list(tmp_path.iterdir()) == []


def test_legacy_8bit_protocol_known_values(tmp_path):
    vals = np.array([[0, 255, 256, 511, 32768, 65280, 65535]], np.uint16)
    p = tmp_path / "g.png"
    cv2.imwrite(str(p), vals)
    got = read_image(p, protocol="8bit")[..., 0]
    # v >> 8 = 0, 0, 1, 1, 128, 255, 255 -> / 255
    want = np.array([[0, 0, 1, 1, 128, 255, 255]], np.float32) / np.float32(255)
    assert np.array_equal(got, want)
    assert np.array_equal(read_image(p, "16bit")[..., 0], vals.astype(np.float32) / np.float32(65535))
    # what OpenCV's IMREAD_COLOR (the legacy readers) does to the same file: truncation
    legacy = cv2.imread(str(p), cv2.IMREAD_COLOR)[..., 0]
    assert np.array_equal(legacy.astype(np.float32) / 255, want)


def test_grey_handling(tmp_path, rng):
    g = rng.integers(0, 65536, size=(6, 8), dtype=np.uint16)
    p = tmp_path / "grey.png"
    cv2.imwrite(str(p), g)
    one = read_image(p)
    assert one.shape == (6, 8, 1)
    assert np.array_equal(read_image(p, channels=1), one)
    three = read_image(p, channels=3)
    assert three.shape == (6, 8, 3)
    assert all(np.array_equal(three[..., c], one[..., 0]) for c in range(3))
    rgb = write_png16(tmp_path / "rgb.png", rng.random((6, 8, 3)))
    with pytest.raises(ImageError, match="rgb.png.*single-channel"):
        read_image(rgb, channels=1)
    # grey written by our writer stays grey (1 channel), (H,W,1) accepted
    p2 = write_png16(tmp_path / "g2.png", one)
    assert read_raw(p2).shape == (6, 8, 1)
    assert np.array_equal(read_raw(p2)[..., 0], g)


def test_alpha_opaque_dropped_translucent_rejected(tmp_path, rng):
    bgra = rng.integers(0, 65536, size=(4, 5, 4), dtype=np.uint16)
    bgra[..., 3] = 65535
    p = tmp_path / "opaque.png"
    cv2.imwrite(str(p), bgra)
    assert np.array_equal(read_raw(p), bgra[..., 2::-1])
    bgra[0, 0, 3] = 10
    q = tmp_path / "alpha.png"
    cv2.imwrite(str(q), bgra)
    with pytest.raises(ImageError, match="alpha.png.*alpha"):
        read_image(q)


def test_tiff_and_jpeg(tmp_path, rng):
    raw = _rgb16(rng)
    p = tmp_path / "a.tif"
    cv2.imwrite(str(p), raw[..., ::-1])
    assert np.array_equal(read_raw(p), raw)
    j = tmp_path / "a.jpg"
    cv2.imwrite(str(j), np.full((16, 16, 3), 128, np.uint8))
    img = read_image(j)
    assert img.shape == (16, 16, 3) and abs(float(img.mean()) - 128 / 255) < 2 / 255


def test_missing_empty_corrupt_truncated(tmp_path, rng):
    with pytest.raises(ImageError, match="nope.png.*not found"):
        read_image(tmp_path / "nope.png")
    e = tmp_path / "empty.png"
    e.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.png.*empty"):
        read_image(e)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(ImageError, match="junk.png.*decode"):
        read_image(junk)
    good = write_png16(tmp_path / "good.png", rng.random((32, 32, 3)))
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 5):
        t = tmp_path / f"trunc{cut}.png"
        t.write_bytes(data[:cut])
        with pytest.raises(ImageError, match=f"trunc{cut}.png.*truncated"):
            read_image(t)
    # corrupt body with an intact tail: decoder error
    bad = bytearray(data)
    bad[60:120] = b"\x00" * 60
    c = tmp_path / "corrupt.png"
    c.write_bytes(bytes(bad))
    with pytest.raises(ImageError, match="corrupt.png"):
        read_image(c)
    # truncated JPEG (libjpeg would pad it silently)
    ok, enc = cv2.imencode(".jpg", (rng.random((64, 64, 3)) * 255).astype(np.uint8))
    tj = tmp_path / "t.jpg"
    tj.write_bytes(enc.tobytes()[: len(enc) // 2])
    with pytest.raises(ImageError, match="t.jpg.*truncated"):
        read_image(tj)


def test_unsupported_dtype(tmp_path):
    p = tmp_path / "f.tif"
    cv2.imwrite(str(p), np.zeros((4, 4), np.float32))
    with pytest.raises(ImageError, match="f.tif.*sample type"):
        read_image(p)


def test_read_pair_size_mismatch_names_both(tmp_path, rng):
    a = write_png16(tmp_path / "left.png", rng.random((8, 10, 3)))
    b = write_png16(tmp_path / "right.png", rng.random((8, 12, 3)))
    with pytest.raises(ImageError) as ei:
        read_pair(a, b)
    assert "left.png" in str(ei.value) and "right.png" in str(ei.value)
    left, right = read_pair(a, a)
    assert left.shape == right.shape == (8, 10, 3)


def test_unknown_protocol():
    with pytest.raises(ValueError, match="protocol"):
        to_float(np.zeros((1, 1, 1), np.uint16), "12bit")


def test_atomic_write_no_stray_tmp(tmp_path, rng):
    p = tmp_path / "sub" / "out.png"
    write_png16(p, rng.random((5, 5, 3)))
    assert sorted(x.name for x in p.parent.iterdir()) == ["out.png"]


def test_atomic_write_failure_leaves_old_file(tmp_path, rng, monkeypatch):
    p = tmp_path / "out.png"
    old = rng.random((5, 5, 3))
    write_png16(p, old)
    before = p.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_png16(p, rng.random((5, 5, 3)))
    monkeypatch.undo()
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.png"]
    # a failure before anything is written leaves no file at all
    with pytest.raises(ImageError):
        write_png16(tmp_path / "never.png", np.full((2, 2), np.inf))
    assert not (tmp_path / "never.png").exists()
