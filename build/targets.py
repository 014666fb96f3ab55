"""What `edge-verify build --model X` builds: modules, contracts and source hashes.

A target is one or more parts, one engine each (the detector is three nets).
Weights come from a PyTorch checkpoint with its contract (what training and
`models fetch` write under $EDGE_VERIFY_HOME/models/checkpoints), or, for the
starter models before any conversion, straight from the fetched originals.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge import paths
from edge.engines.manifest import file_sha256
from edge.exc import ConfigError, ModelError
from edge_build.checkpoints import read_checkpoint
from edge_build.models import attributes, dlib_resnet, koch, mobilefacenet, mtcnn
from edge_build.sources import weight_path

MODELS = ("embedding", "detector", "attributes", "all")
CHECKPOINTS = {"embedding": "dlib_resnet_v1.pt", "detector": "mtcnn.pt", "attributes": "attributes.pt"}


@dataclass
class Part:
    name: str  # engine name: "embedding", "detector-pnet", ...
    module: object  # torch.nn.Module in eval mode
    contract: dict
    source: Path
    source_sha256: str


def checkpoint_path(model: str, models_dir: Path | None = None) -> Path:
    folder = Path(models_dir) / "checkpoints" if models_dir else paths.checkpoints_dir()
    return folder / CHECKPOINTS[model]


def load_parts(model: str, checkpoint: Path | None = None, models_dir: Path | None = None) -> list[Part]:
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if model == "all":
        raise ConfigError("expand 'all' with models_for('all') first")
    loader = {"embedding": embedding_parts, "detector": detector_parts, "attributes": attribute_parts}[model]
    return loader(Path(checkpoint) if checkpoint else checkpoint_path(model, models_dir))


def models_for(choice: str, models_dir: Path | None = None) -> tuple[list[str], list[str]]:
    """(models to build, notes about ones left out). 'all' takes the attribute
    model only when it has been trained, and says so when it has not."""
    if choice != "all":
        return [choice], []
    chosen, notes = ["embedding", "detector"], []
    attributes = checkpoint_path("attributes", models_dir)
    if attributes.exists():
        chosen.append("attributes")
    else:
        notes.append(f"attributes: skipped, no checkpoint at {attributes} (train one with `edge-verify train attributes`)")
    return chosen, notes


def embedding_parts(checkpoint: Path) -> list[Part]:
    if checkpoint.exists():
        module, contract = embedding_loader(checkpoint).load_checkpoint(checkpoint)
        return [Part("embedding", module, contract, checkpoint, file_sha256(checkpoint))]
    original = source_file("dlib_resnet", checkpoint)
    module = dlib_resnet.load_dlib_resnet(original)
    return [Part("embedding", module, dict(dlib_resnet.CONTRACT), original, file_sha256(original))]


# checkpoint "arch" -> module with load_checkpoint(path) -> (module, contract);
# a fine-tuned dlib ResNet keeps dlib's arch id, so it needs no entry of its own
EMBEDDING_ARCHS = {dlib_resnet.ARCH: dlib_resnet, koch.ARCH: koch, mobilefacenet.ARCH: mobilefacenet}


def embedding_loader(checkpoint: Path):
    arch = read_checkpoint(checkpoint)["arch"]
    if arch not in EMBEDDING_ARCHS:
        raise ModelError(f"checkpoint {checkpoint} holds a {arch!r} network; embedding checkpoints are "
                         f"{', '.join(EMBEDDING_ARCHS)}")
    return EMBEDDING_ARCHS[arch]


def detector_parts(checkpoint: Path) -> list[Part]:
    if checkpoint.exists():
        try:
            nets, contracts = mtcnn.load_checkpoint(checkpoint)
        except ValueError as error:
            raise ModelError(str(error)) from error
        digest = file_sha256(checkpoint)
        return [Part(contracts[key]["name"], nets[key], contracts[key], checkpoint, digest) for key in mtcnn.NETS]
    originals = {key: source_file(f"mtcnn_{key}", checkpoint) for key in mtcnn.NETS}
    nets = mtcnn.load_mtcnn(originals["pnet"], originals["rnet"], originals["onet"])
    return [Part(mtcnn.CONTRACT[key]["name"], nets[key], dict(mtcnn.CONTRACT[key]), originals[key], file_sha256(originals[key]))
            for key in mtcnn.NETS]


def attribute_parts(checkpoint: Path) -> list[Part]:
    if not checkpoint.exists():
        raise ModelError(f"no attributes checkpoint at {checkpoint}; train one with `edge-verify train attributes`")
    module, contract = attributes.load_checkpoint(checkpoint)
    return [Part(contract.get("name", "attributes"), module, contract, checkpoint, file_sha256(checkpoint))]


def source_file(key: str, checkpoint: Path) -> Path:
    original = weight_path(key)
    if not original.exists():
        raise ModelError(f"no checkpoint at {checkpoint} and no fetched weights at {original}; run `edge-verify models fetch`")
    return original
