"""Reader for dlib's binary serialization of the face-recognition ResNet.

dlib writes a network by recursing through its C++ type, so the file holds the
layer records but not the wiring (tag ids, skip targets, add_prev sources live
only in the type). We therefore hard-code the one network we accept
(``anet_type`` of dlib's face-recognition example) and check that every record
in the file is exactly the one that network would have written. Anything else
-- a different model, a newer record version, truncation, stray bytes -- is a
ModelError that names the byte offset and what was expected there, because a
silently mis-read weight would give plausible but wrong embeddings.

Primitive encodings are documented in shared/notes/dlib-model-format.md §1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.exc import ModelError

MAX_STRING = 1 << 16  # record tags are short; a huge length means garbage, not a tag


# ---------------------------------------------------------------- byte cursor

class Cursor:
    """Position in a byte buffer; every read is bounds-checked."""

    def __init__(self, data: bytes, pos: int = 0):
        self.view = memoryview(data)
        self.pos = pos

    def take(self, count: int, what: str) -> memoryview:
        if count < 0 or self.pos + count > len(self.view):
            left = len(self.view) - self.pos
            raise ModelError(
                f"dlib file truncated at offset {self.pos}: {what} needs {count} bytes, {left} left"
            )
        chunk = self.view[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def fail(self, what: str, at: int | None = None) -> ModelError:
        return ModelError(f"dlib file invalid at offset {self.pos if at is None else at}: {what}")


# ----------------------------------------------------------------- primitives

def read_int(cur: Cursor, what: str, width: int = 8, signed: bool = True) -> int:
    """Sign-magnitude varint: control byte (low nibble = byte count, bit 7 = negative)."""
    start = cur.pos
    control = cur.take(1, what)[0]
    count = control & 0x0F
    if control & 0x70 or count == 0 or count > width:
        raise cur.fail(f"{what}: bad integer control byte 0x{control:02x} "
                       f"(expected 1..{width} bytes, bits 4-6 clear)", start)
    value = int.from_bytes(cur.take(count, what), "little")
    negative = bool(control & 0x80)
    limit = 1 << (8 * width - 1) if signed else 1 << (8 * width)
    if negative and not signed:
        raise cur.fail(f"{what}: negative value for an unsigned field", start)
    if value > (limit if negative else limit - 1):
        raise cur.fail(f"{what}: value {value} overflows a {8 * width}-bit field", start)
    return -value if negative else value


def read_uint(cur: Cursor, what: str, width: int = 8) -> int:
    return read_int(cur, what, width, signed=False)


def read_bool(cur: Cursor, what: str) -> bool:
    start = cur.pos
    byte = cur.take(1, what)[0]
    if byte not in (0x30, 0x31):
        raise cur.fail(f"{what}: bool byte 0x{byte:02x}, expected '0' or '1'", start)
    return byte == 0x31


def read_float(cur: Cursor, what: str, double: bool = False) -> float:
    """Mantissa (int64) then exponent (int16); value = mantissa * 2**exponent.

    Floats (not doubles) are returned as the exact float32 value.
    """
    start = cur.pos
    if cur.take(1, what)[0] & 0x70:
        # dlib's legacy text floats set these bits; this model never uses them
        raise cur.fail(f"{what}: legacy text float encoding is not supported", start)
    cur.pos = start
    mantissa = read_int(cur, f"{what} mantissa", 8)
    exponent = read_int(cur, f"{what} exponent", 2)
    if exponent == 32000:
        value = math.inf
    elif exponent == 32001:
        value = -math.inf
    elif exponent == 32002:
        value = math.nan
    elif exponent > 32002:
        raise cur.fail(f"{what}: exponent {exponent} is not a valid float code", start)
    else:
        try:
            value = math.ldexp(mantissa, exponent)
        except OverflowError:
            raise cur.fail(f"{what}: {mantissa} * 2^{exponent} overflows", start) from None
    return value if double else float(np.float32(value))


def read_string(cur: Cursor, what: str) -> str:
    start = cur.pos
    length = read_uint(cur, f"{what} length")
    if length > MAX_STRING:
        raise cur.fail(f"{what}: string length {length} is implausible", start)
    return bytes(cur.take(length, what)).decode("latin-1")


def read_tensor(cur: Cursor, what: str) -> np.ndarray:
    """resizable_tensor: version 2, dims (n, k, nr, nc), float32 data in that order."""
    start = cur.pos
    version = read_int(cur, f"{what} tensor version")
    if version != 2:
        raise cur.fail(f"{what}: tensor version {version}, expected 2", start)
    dims = tuple(read_int(cur, f"{what} tensor dim") for _ in range(4))
    if min(dims) < 0:
        raise cur.fail(f"{what}: negative tensor dims {dims}", start)
    count = math.prod(dims)
    raw = cur.take(4 * count, f"{what} tensor data {dims}")
    return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)


def read_alias(cur: Cursor, what: str) -> tuple[int, int, int, int]:
    """alias_tensor: version 1 and four dims, no data."""
    start = cur.pos
    version = read_int(cur, f"{what} alias version")
    if version != 1:
        raise cur.fail(f"{what}: alias_tensor version {version}, expected 1", start)
    return tuple(read_int(cur, f"{what} alias dim") for _ in range(4))


def expect(cur: Cursor, got, wanted, what: str, at: int) -> None:
    if got != wanted:
        raise cur.fail(f"{what} is {got!r}, expected {wanted!r}", at)


def expect_int(cur: Cursor, wanted: int, what: str) -> None:
    at = cur.pos
    expect(cur, read_int(cur, what), wanted, what, at)


def expect_tag(cur: Cursor, wanted: str, what: str) -> None:
    at = cur.pos
    expect(cur, read_string(cur, f"{what} record tag"), wanted, f"{what} record tag", at)


# ------------------------------------------------------ the network we accept

@dataclass(frozen=True)
class Node:
    """One link of dlib's layer chain, forward order; ``spec`` = expected record fields."""

    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, fc, tag, skip
    spec: tuple = ()

    @property
    def is_layer(self) -> bool:
        return self.kind not in ("tag", "skip")


STEM_FILTERS = 32
# (filters, downsample) for each residual unit, input side first: alevel4 .. alevel0
RESIDUAL_UNITS = (
    ((32, False),) * 3
    + ((64, True),) + ((64, False),) * 3
    + ((128, True),) + ((128, False),) * 2
    + ((256, True),) + ((256, False),) * 2
    + ((256, True),)
)
EMBEDDING_SIZE = 128
INPUT_SIZE = 150


def conv(cin: int, cout: int, k: int, s: int, p: int) -> Node:
    return Node("con", (("in_channels", cin), ("filters", cout), ("kernel", (k, k)),
                        ("stride", (s, s)), ("padding", (p, p))))


def pool(kind: str, k: int, s: int) -> Node:
    return Node(kind, (("kernel", (k, k)), ("stride", (s, s)), ("padding", (0, 0))))


def residual_nodes(cin: int, cout: int, down: bool) -> list[Node]:
    """ares / ares_down of dlib's example, as the chain dlib serializes."""
    stride = 2 if down else 1
    block = [conv(cin, cout, 3, stride, 0 if down else 1), Node("affine", (("channels", cout),)),
             Node("relu"), conv(cout, cout, 3, 1, 1), Node("affine", (("channels", cout),))]
    if down:  # tag1, block, tag2, skip1, avg_pool, add_prev2
        return [Node("tag"), *block, Node("tag"), Node("skip"), pool("avg_pool", 2, 2),
                Node("add_prev"), Node("relu")]
    return [Node("tag"), *block, Node("add_prev"), Node("relu")]


def face_resnet_chain() -> list[Node]:
    """Forward-order chain of dlib's ``anet_type`` (dnn_face_recognition_ex.cpp)."""
    chain = [conv(3, STEM_FILTERS, 7, 2, 0), Node("affine", (("channels", STEM_FILTERS),)),
             Node("relu"), pool("max_pool", 3, 2)]
    channels = STEM_FILTERS
    for filters, down in RESIDUAL_UNITS:
        chain += residual_nodes(channels, filters, down)
        channels = filters
    chain += [pool("avg_pool", 0, 1),  # dlib's avg_pool_everything: window 0 = whole input
              Node("fc", (("inputs", channels), ("outputs", EMBEDDING_SIZE), ("bias", False)))]
    return chain


# ------------------------------------------------------------- layer records

@dataclass
class LayerRecord:
    kind: str
    tag: str  # the record's tag string in the file, e.g. "con_4"
    offset: int  # where the record starts
    attrs: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)  # name -> float32 ndarray


def read_multipliers(cur: Cursor, what: str) -> None:
    # learning-rate / weight-decay multipliers: training-only, but they must be well-formed
    for _ in range(4):
        read_float(cur, f"{what} multiplier", double=True)


def read_con(cur: Cursor, rec: LayerRecord) -> None:
    params = read_tensor(cur, "con params")
    filters = read_int(cur, "con num_filters")
    kernel = (read_int(cur, "con nr"), read_int(cur, "con nc"))
    stride = (read_int(cur, "con stride_y", 4), read_int(cur, "con stride_x", 4))
    padding = (read_int(cur, "con padding_y", 4), read_int(cur, "con padding_x", 4))
    at = cur.pos
    wshape = read_alias(cur, "con filters")
    bshape = read_alias(cur, "con biases")
    read_multipliers(cur, "con")
    out, cin = wshape[0], wshape[1]
    expect(cur, wshape, (filters, cin, *kernel), "con filters alias", at)
    expect(cur, bshape, (1, filters, 1, 1), "con biases alias", at)
    nweights = math.prod(wshape)
    expect(cur, params.shape, (nweights + out, 1, 1, 1), "con params tensor shape", rec.offset)
    flat = params.reshape(-1)
    rec.attrs.update(in_channels=cin, filters=filters, kernel=kernel, stride=stride, padding=padding)
    rec.params.update(weight=flat[:nweights].reshape(wshape), bias=flat[nweights:].copy())


def read_affine(cur: Cursor, rec: LayerRecord) -> None:
    params = read_tensor(cur, "affine params")
    at = cur.pos
    gshape = read_alias(cur, "affine gamma")
    bshape = read_alias(cur, "affine beta")
    mode_at = cur.pos
    expect(cur, read_int(cur, "affine mode", 4), 0, "affine mode (0 = per channel)", mode_at)
    channels = gshape[1]
    expect(cur, gshape, (1, channels, 1, 1), "affine gamma alias", at)
    expect(cur, bshape, gshape, "affine beta alias", at)
    expect(cur, params.shape, (2 * channels, 1, 1, 1), "affine params tensor shape", rec.offset)
    flat = params.reshape(-1)
    rec.attrs.update(channels=channels)
    rec.params.update(gamma=flat[:channels].copy(), beta=flat[channels:].copy())


def read_pool(cur: Cursor, rec: LayerRecord) -> None:
    kernel = (read_int(cur, "pool nr"), read_int(cur, "pool nc"))
    stride = (read_int(cur, "pool stride_y", 4), read_int(cur, "pool stride_x", 4))
    padding = (read_int(cur, "pool padding_y", 4), read_int(cur, "pool padding_x", 4))
    rec.attrs.update(kernel=kernel, stride=stride, padding=padding)


def read_fc(cur: Cursor, rec: LayerRecord) -> None:
    outputs = read_uint(cur, "fc num_outputs")
    inputs = read_uint(cur, "fc num_inputs")
    params = read_tensor(cur, "fc params")
    at = cur.pos
    wshape = read_alias(cur, "fc weights")
    bshape = read_alias(cur, "fc biases")
    mode_at = cur.pos
    mode = read_int(cur, "fc bias_mode", 4)
    if mode not in (0, 1):
        raise cur.fail(f"fc bias_mode is {mode}, expected 0 (bias) or 1 (no bias)", mode_at)
    read_multipliers(cur, "fc")
    bias = mode == 0
    expect(cur, wshape, (inputs, outputs, 1, 1), "fc weights alias", at)
    expect(cur, bshape, (1, outputs, 1, 1) if bias else (0, 0, 0, 0), "fc biases alias", at)
    rows = inputs + (1 if bias else 0)
    expect(cur, params.shape, (rows, outputs, 1, 1), "fc params tensor shape", rec.offset)
    table = params.reshape(rows, outputs)
    rec.attrs.update(inputs=inputs, outputs=outputs, bias=bias)
    rec.params["weight"] = table[:inputs].copy()  # (in, out): out = x @ W
    if bias:
        rec.params["bias"] = table[inputs].copy()


# record tag -> (our kind, field reader); only the versions this model was saved with
RECORD_READERS = {
    "con_4": ("con", read_con),
    "affine_": ("affine", read_affine),
    "relu_": ("relu", None),
    "max_pool_2": ("max_pool", read_pool),
    "avg_pool_2": ("avg_pool", read_pool),
    "add_prev_": ("add_prev", None),
    "fc_2": ("fc", read_fc),
}
TAG_OF_KIND = {kind: tag for tag, (kind, _) in RECORD_READERS.items()}


def read_layer(cur: Cursor, node: Node, index: int) -> LayerRecord:
    """One layer record, checked against the node the architecture puts here."""
    start = cur.pos
    what = f"layer {index} ({node.kind})"
    expect_tag(cur, TAG_OF_KIND[node.kind], what)
    kind, reader = RECORD_READERS[TAG_OF_KIND[node.kind]]
    rec = LayerRecord(kind=kind, tag=TAG_OF_KIND[node.kind], offset=start)
    if reader is not None:
        reader(cur, rec)
    for key, wanted in node.spec:
        expect(cur, rec.attrs.get(key), wanted, f"{what} {key}", start)
    for name, array in rec.params.items():
        if not np.isfinite(array).all():
            raise cur.fail(f"{what} {name} contains NaN or infinity", start)
    return rec


def read_trailer(cur: Cursor, over_input: bool, what: str) -> None:
    """add_layer's state after its record: 3 flags and (empty) gradient/output tensors."""
    for flag in ("setup_called", "gradient_input_is_stale", "disabled"):
        read_bool(cur, f"{what} {flag}")
    read_tensor(cur, f"{what} x_grad")
    read_tensor(cur, f"{what} cached_output")
    if over_input:
        read_tensor(cur, f"{what} grad_final")
        at = cur.pos
        expect(cur, read_uint(cur, f"{what} sample_expansion_factor"), 1,
               f"{what} sample_expansion_factor", at)
    else:
        read_tensor(cur, f"{what} params_grad")


# ------------------------------------------------------------------ the file

@dataclass
class DlibNet:
    input_mean: tuple[float, float, float]  # R, G, B, exact float32 values from the file
    input_size: tuple[int, int]  # rows, cols
    loss_margin: float
    loss_threshold: float
    layers: list[LayerRecord]  # forward order, input side first
    bytes_consumed: int

    @property
    def num_params(self) -> int:
        return sum(a.size for rec in self.layers for a in rec.params.values())

    def count(self, kind: str) -> int:
        return sum(rec.kind == kind for rec in self.layers)


def read_wrapper_versions(cur: Cursor, chain: list[Node]) -> None:
    """The run of wrapper version ints, outermost (fc) first, down to the first conv."""
    for position, node in enumerate(reversed(chain)):
        if not node.is_layer:
            wanted = 1  # tag / skip wrappers
        elif position == len(chain) - 1:
            wanted = 3  # add_layer directly over the input layer
        else:
            wanted = 2
        expect_int(cur, wanted, f"wrapper version of chain link {len(chain) - 1 - position} ({node.kind})")


def read_input(cur: Cursor) -> tuple[tuple[float, float, float], tuple[int, int]]:
    expect_tag(cur, "input_rgb_image_sized", "input")
    mean = tuple(read_float(cur, f"input avg_{c}") for c in ("red", "green", "blue"))
    at = cur.pos
    size = (read_uint(cur, "input NR"), read_uint(cur, "input NC"))
    expect(cur, size, (INPUT_SIZE, INPUT_SIZE), "input size", at)
    return mean, size


def parse_face_resnet(data: bytes) -> DlibNet:
    cur = Cursor(data)
    expect_int(cur, 1, "add_loss_layer version")
    expect_tag(cur, "loss_metric_2", "loss")
    margin = read_float(cur, "loss margin")
    threshold = read_float(cur, "loss distance threshold")
    chain = face_resnet_chain()
    read_wrapper_versions(cur, chain)
    mean, size = read_input(cur)
    layers = []
    for index, node in enumerate(n for n in chain if n.is_layer):
        layers.append(read_layer(cur, node, index))
        read_trailer(cur, over_input=index == 0, what=f"layer {index} ({node.kind})")
    if cur.pos != len(data):
        raise cur.fail(f"{len(data) - cur.pos} unexpected bytes after the last layer")
    return DlibNet(mean, size, margin, threshold, layers, cur.pos)


def read_face_resnet(path: str | Path) -> DlibNet:
    """Read and fully validate ``dlib_face_recognition_resnet_model_v1.dat``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelError(f"cannot read dlib model {path}: {error.strerror or error}") from error
    try:
        return parse_face_resnet(data)
    except ModelError as error:
        raise ModelError(f"{path.name}: {error}") from error
