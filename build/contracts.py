"""A model's contract -> the manifest's inputs, outputs and preprocess blocks.

Contracts come with the checkpoint (``load_checkpoint(path) -> (module,
contract)``) and are the only source of tensor names, shapes and input
normalisation: nothing is inferred from the weights. Two spellings exist:

* single input/output (the dlib ResNet): ``input_name``, ``output_name``,
  ``size`` [w, h], ``embedding_size``, ``layout`` "NCHW";
* several outputs (MTCNN): ``input``, ``input_shape``, ``outputs``,
  ``output_shapes``, with -1 for dynamic axes.

A contract that does not state a name or a shape is a ModelError, never a guess.
"""
from __future__ import annotations

from edge.exc import ModelError

# How to prepare an input: these go to the manifest's ``preprocess`` block.
PREPROCESS_KEYS = ("size", "colour", "layout", "mean", "std", "chip_padding", "window", "stride")
# Tensor and identity keys: they become the manifest's inputs/outputs/model fields.
IO_KEYS = {"name", "model", "input", "input_name", "input_shape", "output_name", "outputs", "output_shapes",
           "embedding_size", "threshold", "metric"}
CHANNELS = 3


def require(contract: dict, key: str):
    if key not in contract or contract[key] is None:
        raise ModelError(f"model contract of {contract.get('model', '?')} does not state {key!r}")
    return contract[key]


def input_spec(contract: dict) -> dict:
    """{"name", "shape", "dtype", "layout"} with -1 for the dynamic batch axis."""
    layout = contract.get("layout", "NCHW")
    if "input_shape" in contract:
        shape = [int(v) for v in contract["input_shape"]]
        name = contract.get("input") or require(contract, "input_name")
    else:
        name = contract.get("input_name") or require(contract, "input")
        width, height = require(contract, "size")
        if layout != "NCHW":
            raise ModelError(f"contract layout {layout!r}: only NCHW models are exported")
        shape = [-1, CHANNELS, int(height), int(width)]
    shape[0] = -1  # every engine takes a dynamic batch
    return {"name": name, "shape": shape, "dtype": "float32", "layout": layout}


def output_specs(contract: dict) -> list[dict]:
    """[{"name", "shape", "dtype"}] in the model's output order."""
    if "outputs" in contract:
        names = list(contract["outputs"])
        shapes = require(contract, "output_shapes")
        if len(shapes) != len(names):
            raise ModelError(f"contract of {contract.get('model')} lists {len(names)} outputs but {len(shapes)} shapes")
        return [{"name": n, "shape": [-1] + [int(v) for v in s[1:]], "dtype": "float32"} for n, s in zip(names, shapes)]
    name = require(contract, "output_name")
    return [{"name": name, "shape": [-1, int(require(contract, "embedding_size"))], "dtype": "float32"}]


def preprocess(contract: dict) -> dict:
    """What the caller must do to an image before the model sees it."""
    for key in ("colour", "mean", "std"):
        require(contract, key)
    block = {key: contract[key] for key in PREPROCESS_KEYS if key in contract}
    block.setdefault("layout", "NCHW")
    block.setdefault("size", None)
    return block


def model_notes(contract: dict) -> dict:
    """Everything else the contract says (threshold provenance, ...), kept verbatim."""
    return {key: value for key, value in contract.items() if key not in IO_KEYS and key not in PREPROCESS_KEYS}


def dynamic_axes(contract: dict) -> dict[str, dict[int, str]]:
    """torch.onnx's dynamic_axes: every -1 of the contract, batch first."""
    axes: dict[str, dict[int, str]] = {}
    for spec in [input_spec(contract)] + output_specs(contract):
        named = {}
        for index, size in enumerate(spec["shape"]):
            if size == -1:
                named[index] = "batch" if index == 0 else f"{spec['name']}_{index}"
        axes[spec["name"]] = named
    return axes


def example_shape(contract: dict, batch: int = 2) -> list[int]:
    """A tracing input shape. Dynamic spatial axes get odd, unequal sizes so the
    exporter cannot mistake them for constants (or width for height)."""
    shape = list(input_spec(contract)["shape"])
    shape[0] = batch
    spare = iter((37, 29, 31, 23))
    return [next(spare) if size == -1 else size for size in shape]
