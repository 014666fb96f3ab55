"""dlib serialization reader: primitives on documented byte examples, the real file, corrupt copies."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edge.exc import ModelError
from edge_build.dlib_format import (Cursor, read_alias, read_bool, read_face_resnet, read_float,
                                    read_int, read_string, read_tensor, read_uint)

RESNET_BYTES = 22_466_066
RESNET_PARAMS = 5_614_592


def cur(hex_bytes: str) -> Cursor:
    return Cursor(bytes.fromhex(hex_bytes))


# ------------------------------------------------------------------ integers

@pytest.mark.parametrize("encoded, value", [
    ("01 00", 0), ("01 80", 128), ("02 00 01", 256), ("02 80 12", 4736), ("81 1c", -28),
    ("08 ff ff ff ff ff ff ff 7f", 2**63 - 1),
])
def test_int_examples(encoded, value):
    c = cur(encoded)
    assert read_int(c, "x") == value
    assert c.pos == len(bytes.fromhex(encoded))


@pytest.mark.parametrize("encoded, message", [
    ("00", "control byte"),  # zero magnitude bytes is invalid
    ("09 01 02 03 04 05 06 07 08 09", "control byte"),  # more than 8 bytes
    ("11 00", "control byte"),  # bits 4-6 must be clear
    ("02 00", "truncated"),
    ("", "truncated"),
    ("08 00 00 00 00 00 00 00 80", "overflows"),  # 2**63 does not fit int64
])
def test_bad_ints(encoded, message):
    with pytest.raises(ModelError, match=message):
        read_int(cur(encoded), "x")


def test_int_width_and_sign_are_checked():
    with pytest.raises(ModelError, match="control byte"):
        read_int(cur("03 00 00 01"), "x", width=2)
    with pytest.raises(ModelError, match="unsigned"):
        read_uint(cur("81 1c"), "x")
    assert read_uint(cur("02 96 00"), "x") == 150


# -------------------------------------------------------------- other types

def test_bool():
    assert read_bool(cur("31"), "b") is True
    assert read_bool(cur("30"), "b") is False
    with pytest.raises(ModelError, match="bool byte 0x01"):
        read_bool(cur("01"), "b")


@pytest.mark.parametrize("encoded, double, value", [
    ("01 10 81 04", True, 1.0),  # 16 * 2^-4
    ("01 00 01 0b", True, 0.0),  # zero keeps exponent 11 after byte shifting
    ("03 0a d7 a3 81 1c", False, float(np.float32(0.04))),  # 10737418 * 2^-28
    ("03 9a 99 99 81 18", False, float(np.float32(0.6))),
    ("03 62 90 f5 81 11", False, float(np.float32(122.782))),
    ("81 03 01 00", True, -3.0),
])
def test_float_examples(encoded, double, value):
    c = cur(encoded)
    assert read_float(c, "f", double=double) == value
    assert c.pos == len(bytes.fromhex(encoded))


def test_float_special_codes():
    assert read_float(cur("01 00 02 00 7d"), "f") == math.inf  # exponent 32000
    assert read_float(cur("01 00 02 01 7d"), "f") == -math.inf
    assert math.isnan(read_float(cur("01 00 02 02 7d"), "f"))
    with pytest.raises(ModelError, match="not a valid float code"):
        read_float(cur("01 00 02 03 7d"), "f")


def test_legacy_text_float_is_refused():
    with pytest.raises(ModelError, match="legacy text float"):
        read_float(cur("33 2e 31 34"), "f")  # "3.14"


def test_string():
    c = cur("01 05" + b"relu_".hex())
    assert read_string(c, "s") == "relu_"
    with pytest.raises(ModelError, match="truncated"):
        read_string(cur("01 09 41 42"), "s")


def test_empty_tensor():
    assert read_tensor(cur("01 02 01 00 01 00 01 00 01 00"), "t").shape == (0, 0, 0, 0)


def test_tensor_data_is_nchw_float32():
    values = np.array([1.5, -2.25, 3.0, 0.125, 7.0, -1.0], dtype="<f4")
    raw = bytes.fromhex("01 02 01 01 01 02 01 03 01 01") + values.tobytes()  # dims 1,2,3,1
    tensor = read_tensor(Cursor(raw), "t")
    assert tensor.dtype == np.float32 and tensor.shape == (1, 2, 3, 1)
    np.testing.assert_array_equal(tensor.reshape(-1), values)
    with pytest.raises(ModelError, match="truncated"):
        read_tensor(Cursor(raw[:-1]), "t")
    with pytest.raises(ModelError, match="tensor version 1, expected 2"):
        read_tensor(Cursor(b"\x01\x01" + raw[2:]), "t")


def test_alias():
    assert read_alias(cur("01 01 01 20 01 03 01 07 01 07"), "a") == (32, 3, 7, 7)
    with pytest.raises(ModelError, match="alias_tensor version 2"):
        read_alias(cur("01 02 01 20 01 03 01 07 01 07"), "a")


# -------------------------------------------------------------- the real file

@pytest.fixture(scope="module")
def resnet_path(model_sources):
    return model_sources["dlib_resnet"]


@pytest.fixture(scope="module")
def net(resnet_path):
    return read_face_resnet(resnet_path)


def test_whole_file_is_consumed(net, resnet_path):
    assert resnet_path.stat().st_size == RESNET_BYTES
    assert net.bytes_consumed == RESNET_BYTES


def test_layer_table(net):
    counts = {kind: net.count(kind) for kind in
              ("con", "affine", "relu", "max_pool", "avg_pool", "add_prev", "fc")}
    assert counts == {"con": 29, "affine": 29, "relu": 29, "max_pool": 1, "avg_pool": 5,
                      "add_prev": 14, "fc": 1}
    assert len(net.layers) == 108
    assert net.num_params == RESNET_PARAMS
    first, last = net.layers[0], net.layers[-1]
    assert first.params["weight"].shape == (32, 3, 7, 7) and first.params["bias"].shape == (32,)
    assert first.attrs["stride"] == (2, 2) and first.attrs["padding"] == (0, 0)
    assert last.kind == "fc" and last.params["weight"].shape == (256, 128)
    assert "bias" not in last.params


def test_input_and_loss_records(net):
    np.testing.assert_array_equal(np.float32(net.input_mean), np.float32([122.782, 117.001, 104.298]))
    assert net.input_size == (150, 150)
    assert np.float32(net.loss_threshold) == np.float32(0.6)
    assert np.float32(net.loss_margin) == np.float32(0.04)


def test_weights_are_plausible(net):
    gammas = np.concatenate([r.params["gamma"] for r in net.layers if r.kind == "affine"])
    biases = np.concatenate([r.params["bias"] for r in net.layers if r.kind == "con"])
    assert 2.0 < gammas.min() and gammas.max() < 25.0  # mis-aligned reads give wild values
    assert 0 < np.abs(biases).max() < 1e-3  # small but present: they must be loaded


# ------------------------------------------------------------- corrupt copies

@pytest.fixture(scope="module")
def resnet_bytes(resnet_path):
    return resnet_path.read_bytes()


def write_copy(tmp_path, data: bytes):
    path = tmp_path / "dlib_face_recognition_resnet_model_v1.dat"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("keep", [0, 20, 300, 5_000_000, RESNET_BYTES - 1])
def test_truncated_copy_is_refused(tmp_path, resnet_bytes, keep):
    with pytest.raises(ModelError, match="truncated at offset"):
        read_face_resnet(write_copy(tmp_path, resnet_bytes[:keep]))


def test_flipped_header_byte_is_refused(tmp_path, resnet_bytes):
    data = bytearray(resnet_bytes)
    data[4] ^= 0x20  # 'l' of "loss_metric_2" -> 'L'
    with pytest.raises(ModelError, match=r"offset 2: loss record tag is 'Loss_metric_2'"):
        read_face_resnet(write_copy(tmp_path, bytes(data)))


def test_flipped_wrapper_version_is_refused(tmp_path, resnet_bytes):
    data = bytearray(resnet_bytes)
    assert data[29:31] == b"\x01\x02"  # the fc wrapper's add_layer version
    data[30] = 0x03
    with pytest.raises(ModelError, match=r"offset 29: wrapper version .*fc.* is 3, expected 2"):
        read_face_resnet(write_copy(tmp_path, bytes(data)))


def test_trailing_garbage_is_refused(tmp_path, resnet_bytes):
    with pytest.raises(ModelError, match="2 unexpected bytes after the last layer"):
        read_face_resnet(write_copy(tmp_path, resnet_bytes + b"\x01\x00"))


def test_nan_weight_is_refused(tmp_path, resnet_bytes, net):
    first_weight = net.layers[0].params["weight"].reshape(-1)[:4].astype("<f4").tobytes()
    at = resnet_bytes.index(first_weight, net.layers[0].offset)
    data = bytearray(resnet_bytes)
    data[at:at + 4] = np.float32(np.nan).tobytes()
    with pytest.raises(ModelError, match="layer 0 .*weight contains NaN"):
        read_face_resnet(write_copy(tmp_path, bytes(data)))


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ModelError, match="cannot read dlib model"):
        read_face_resnet(tmp_path / "absent.dat")
