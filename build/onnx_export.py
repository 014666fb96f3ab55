"""Stage: PyTorch module -> checked ONNX file.

Opset 17 by default. It is the newest opset every TensorRT we target parses:
JetPack 5.1's TensorRT 8.5 and JetPack 6.0's 8.6 parse up to opset 17, 10.x up
to 20; ONNX Runtime runs all of them. Opset >= 13 is also needed for per-channel
QuantizeLinear (its ``axis`` attribute). The one opset-17 op 8.5 cannot parse,
LayerNormalization, does not occur in our models: ``check_onnx`` refuses it for
opset ceilings of TensorRT 8.5.

We use torch's TorchScript-based exporter (``dynamo=False``): the torch.export
one needs onnxscript, which the build extra does not install, and it gains
nothing for these plain convolutional graphs.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import onnx
import torch

from edge.exc import BuildError, ModelError
from edge_build import contracts
from edge_build.stagelog import stage

DEFAULT_OPSET = 17
MIN_OPSET = 13  # per-channel Q/DQ needs QuantizeLinear's axis attribute
MAX_OPSET = {"tensorrt-8.5": 17, "tensorrt-8.6": 17, "tensorrt-10": 20, "onnxruntime": 21}
NOT_IN_TENSORRT_85 = {"LayerNormalization"}


@stage("export")
def export_onnx(module, contract: dict, path: str | os.PathLike, opset: int = DEFAULT_OPSET, dynamic_batch: bool = True) -> Path:
    """Export ``module`` with the contract's tensor names; returns the checked file's path.

    With ``dynamic_batch`` the batch axis (and any axis the contract marks -1) is
    symbolic; without it the file takes exactly the tracing batch of 1.
    """
    if not MIN_OPSET <= opset <= max(MAX_OPSET.values()):
        raise BuildError(f"opset {opset} is outside {MIN_OPSET}..{max(MAX_OPSET.values())}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = contracts.input_spec(contract)
    outputs = contracts.output_specs(contract)
    example = torch.zeros(contracts.example_shape(contract, batch=2 if dynamic_batch else 1))
    axes = contracts.dynamic_axes(contract)
    if not dynamic_batch:
        axes = {name: {i: label for i, label in named.items() if i != 0} for name, named in axes.items()}
    module = module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter warns that it is deprecated and about tracing
        # constant shapes; neither applies to these fixed graphs.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), os.fspath(path),
            input_names=[inputs["name"]], output_names=[spec["name"] for spec in outputs],
            dynamic_axes=axes or None, opset_version=opset, dynamo=False, do_constant_folding=True,
        )
    check_onnx(path, contract, max_opset=opset, dynamic_batch=dynamic_batch)
    return path


def check_onnx(path: str | os.PathLike, contract: dict, max_opset: int = DEFAULT_OPSET, target: str | None = None,
               dynamic_batch: bool = True) -> None:
    """The ONNX checker, plus what our engines rely on: names from the contract,
    a dynamic batch axis, and an opset (and op set) the target can parse."""
    model = onnx.load(os.fspath(path))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise BuildError(f"{path} fails the ONNX checker: {error}") from error
    opset = default_domain_opset(model)
    ceiling = MAX_OPSET.get(target, max_opset) if target else max_opset
    if opset > ceiling:
        raise BuildError(f"{path} uses opset {opset}; {target or 'the requested target'} parses up to {ceiling}")
    if target == "tensorrt-8.5":
        found = sorted({node.op_type for node in model.graph.node} & NOT_IN_TENSORRT_85)
        if found:
            raise BuildError(f"{path} uses {', '.join(found)}, which TensorRT 8.5 (JetPack 5) cannot parse; export at opset 16")
    want_in = contracts.input_spec(contract)["name"]
    want_out = [spec["name"] for spec in contracts.output_specs(contract)]
    have_in = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    have_out = [o.name for o in model.graph.output]
    if have_in != [want_in] or have_out != want_out:
        raise ModelError(f"{path} has inputs {have_in} and outputs {have_out}; the contract says {[want_in]} and {want_out}")
    if dynamic_batch and not batch_is_dynamic(model):
        raise BuildError(f"{path}: the batch axis of {want_in} is fixed; engines need a dynamic batch")


def default_domain_opset(model) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise BuildError("ONNX model imports no default-domain opset")


def batch_is_dynamic(model) -> bool:
    first = model.graph.input[0].type.tensor_type.shape.dim[0]
    return bool(first.dim_param) or not first.HasField("dim_value")
