"""Issue 12 item 12: image files are sized up from their header before decoding, and only regular
files are read (a FIFO must not hang `identify`)."""
from __future__ import annotations

import os
import struct
import threading
import zlib

import cv2
import numpy as np
import pytest

from edge.exc import ImageError
from edge.vision import image as image_module
from edge.vision.image import load_image


def png_bomb(path, side=20_000):
    """A real PNG of side x side grey pixels, all zero: about 0.4 MB on disk, 400 MB decoded."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + pixels
    chunks = [compressor.compress(row) for _ in range(side)] + [compressor.flush()]
    data = b"".join(chunks)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def jpeg_header(width, height):
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def webp_header(width, height):
    body = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (width - 1).to_bytes(3, "little") \
        + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def bmp_header(width, height):
    return b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0,
                                                                      0, 0, 0, 0, 0)


@pytest.fixture
def no_decoding(monkeypatch):
    """Any decode at all fails the test: the refusal must come from the header alone."""
    def refuse(*args, **kwargs):
        raise AssertionError("the image was decoded")
    monkeypatch.setattr(cv2, "imdecode", refuse)


def test_a_png_bomb_is_refused_from_its_header(tmp_path, no_decoding):
    with pytest.raises(ImageError, match="20000x20000 pixels, over the 50 megapixel limit"):
        load_image(png_bomb(tmp_path / "bomb.png"))


@pytest.mark.parametrize("name, header", [("big.jpg", jpeg_header(30000, 30000)),
                                          ("big.webp", webp_header(16000, 16000)),
                                          ("big.bmp", bmp_header(30000, -30000))], ids=["jpeg", "webp", "bmp"])
def test_other_formats_are_sized_from_their_header(tmp_path, no_decoding, name, header):
    path = tmp_path / name
    path.write_bytes(header + b"\0" * 64)
    with pytest.raises(ImageError, match="megapixel limit"):
        load_image(path)


def test_real_photos_still_load(face_images, tmp_path):
    photo = face_images["Colin_Powell"][0]
    assert load_image(photo).shape == (250, 250, 3)
    for suffix in (".png", ".bmp", ".webp"):
        converted = tmp_path / f"photo{suffix}"
        cv2.imwrite(str(converted), cv2.imread(str(photo)))
        assert image_module.declared_size(converted.read_bytes()[:4096]) == (250, 250)
        assert load_image(converted).shape == (250, 250, 3)
    assert image_module.declared_size(photo.read_bytes()) == (250, 250)


def test_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    outcome = {}

    def load():
        try:
            load_image(fifo)
        except ImageError as error:
            outcome["error"] = str(error)

    reader = threading.Thread(target=load, daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():  # unblock the stuck reader before failing
        with open(fifo, "wb"):
            pass
    assert "not a regular file" in outcome.get("error", "it hung")


def test_identify_on_a_fifo_exits_with_an_error(tmp_path, models_ready, capsys, monkeypatch):
    from edge.cli import main
    from edge.gallery import open_gallery

    monkeypatch.setenv("EDGE_VERIFY_HOME", str(tmp_path))
    (tmp_path / "models").symlink_to(models_ready)
    open_gallery(create=True, actor="test").close()
    fifo = tmp_path / "probe.jpg"
    os.mkfifo(fifo)
    assert main(["identify", str(fifo), "--json"]) == 1
    assert "not a regular file" in capsys.readouterr().out


def test_declared_size_of_garbage_is_unknown():
    assert image_module.declared_size(b"\xff\xd8\xff\xe0\x00") is None
    assert image_module.declared_size(np.zeros(100, np.uint8).tobytes()) is None
