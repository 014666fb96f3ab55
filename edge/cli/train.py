"""`edge-verify train`: Siamese embedding models and the attribute/liveness model.

The command lines only. Training needs the build extra (torch); the build package
runs it (edge_build.commands, reached through edge.extras) when a training
subcommand runs, so the runtime never loads it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from edge.extras import build_command

HELP = """\
Train face models on your own photos, then build them like the shipped ones:

  edge-verify train siamese --data DIR --out runs/m1
  edge-verify build --model embedding --checkpoint runs/m1/model.pt --calibration ~/faces

DIR holds one folder of photos per person. Faces are found and aligned by the product's
own pipeline (run `edge-verify models fetch` first) and cached, so a second run starts at once.
"""

SIAMESE_HELP = """\
Train a face-embedding network on pairs/triplets of faces (one folder of photos per person in DIR).

Architectures:
  koch           Koch et al.'s Siamese convnet on 105x105 grey (resized inside the net);
                 --width 1 is the paper's size (fc 9216x4096, 39M weights; GPU), default 0.25 for CPUs
  mobilefacenet  depthwise-separable bottlenecks, 128-d; --width 1 --net-input 112 is the paper's
                 size (~1M weights), default width 0.5 at 64x64 for CPUs
  dlib-finetune  the imported dlib ResNet with everything frozen but the last residual unit and fc
Losses:
  contrastive    d^2 for same pairs, max(0, margin - d)^2 for different ones (margin 1.0)
  triplet        batch-hard triplet loss on batches of P people x 4 faces (margin 0.2)
  bce-l1         Koch's head: sigmoid(w . |f1 - f2| + b) with binary cross-entropy
  cosine         1 - cos for same pairs, max(0, cos - margin) for different ones (margin 0.3)

Every epoch writes OUT/last.pt (with optimizer state); --resume continues from it with the same
random draws. The end of training writes OUT/model.pt: weights plus the contract (150x150 RGB chip,
mean/std, embedding size, metric, and the distance threshold chosen on training pairs), which
`edge-verify build --model embedding --checkpoint OUT/model.pt` turns into an engine.

GPU: install a CUDA build of torch on the training machine and pass --device cuda (the default is
cpu; cuda is refused, never silently replaced, when torch sees no GPU). With a GPU, use the paper
sizes (--width 1, --batch 128). On a CPU keep --threads at the number of free cores.
"""

ATTRIBUTES_HELP = """\
Train the attribute model (sigmoid + BCE, one output per attribute) with its `live` head.

--labels is a CelebA-style CSV (image name, then -1 or 1 per attribute). Without --labels, DIR is
read as NUAA-style real/ and fake/ folders, and only the `live` head is trained. A photo's subject
is its file name up to the first underscore; subjects, never frames, are held out.

Backbones:
  embedding  (default) the imported dlib ResNet's own layers, frozen, summarised per channel;
             one regularised logistic head per attribute: `live` reads the first stage (colour
             and texture), other attributes the first seven residual units. Needs
             `edge-verify models fetch`. Fits in seconds; cross-validated over --folds subject
             folds (leave-one-subject-out when there are fewer subjects), every held-out fold at
             a threshold chosen without it. --epochs, --batch and --resume do not apply.
  small      a small CNN trained end to end (--epochs, --batch, --resume); subjects split into
             fit / dev / test thirds.

Each attribute's threshold is its equal error rate on held-out faces (for live: attacks accepted =
real faces rejected). The figures are printed and stored in the checkpoint and the engine manifest.
"""


LIVENESS_HELP = """\
Fit the liveness cues (texture, context, motion; cnn with --cnn) on folders of real and attack
frames, and write the liveness model the daemon and `edge-verify liveness` use:

  edge-verify train liveness --data ../shared/datasets/nuaa_train=print \\
                             --data ../shared/datasets/replay_dev=screen

Each DIR holds real/ and fake/ (sub-folders allowed); =ATTACK names what its fakes are (print,
screen, ...: the figures are reported per attack type). A frame's group (who or which source)
is its file name up to the first underscore; groups, never frames, are held out. Faces are found
by the product's pipeline and features computed by the runtime's own code, on every frame as
captured and on --augment random camera shifts of it (resolution, colour cast, tone, blur,
noise, JPEG), all cached.

The texture head's weight decay and both frame cues' thresholds are chosen on groups held out
from fitting (each cue refuses --target-bpcer of those real frames); the printed and stored
figures come from groups the settings did not see. The motion cue is checked on the folders'
real sequences and on --synthetic-clips flat attacks made from their real frames. With --cnn, a
small grey network (the cnn cue) is fitted too and written as liveness-cnn.onnx beside the model:
the mean logit of --cnn-members networks trained from different seeds (one training lands far
from another on new people). Its threshold is its training loss's decision boundary, and its
figures come from --cnn-folds such networks each fitted without a fold of every folder's groups. The model goes
to $EDGE_VERIFY_HOME/models/liveness.json (or --out), with its figures: `edge-verify selftest`
shows them. Needs `edge-verify models fetch` (the detector). Minutes on 2 cores the first time.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train embedding (Siamese) or attribute/liveness models",
                                   description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = parser.add_subparsers(dest="kind", metavar="KIND")
    add_siamese(kinds)
    add_attributes(kinds)
    add_liveness(kinds)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def add_common(parser, epochs: int, batch: int, out_help: str) -> None:
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="training photos")
    parser.add_argument("--out", type=Path, metavar="DIR", help=out_help)
    parser.add_argument("--epochs", type=int, default=epochs, help=f"default {epochs}")
    parser.add_argument("--batch", type=int, default=batch, help=f"batch size (default {batch})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same run")
    parser.add_argument("--resume", action="store_true", help="continue from OUT's last checkpoint")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")


def add_siamese(kinds) -> None:
    parser = kinds.add_parser("siamese", help="embedding network (koch, mobilefacenet, dlib fine-tune)",
                              description=SIAMESE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(parser, epochs=10, batch=32,
               out_help="where last.pt and model.pt go (default $EDGE_VERIFY_HOME/training/siamese-ARCH-LOSS)")
    parser.add_argument("--arch", choices=("koch", "mobilefacenet", "dlib-finetune"), default="mobilefacenet")
    parser.add_argument("--loss", choices=("contrastive", "triplet", "bce-l1", "cosine"), default="triplet")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--width", type=float, help="channel multiplier (default 0.25 koch, 0.5 mobilefacenet)")
    parser.add_argument("--net-input", type=int, help="mobilefacenet input side, multiple of 16 (default 64)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cpu (default) or cuda; see above")
    parser.add_argument("--cache", type=Path, metavar="DIR", help="chip cache (default $EDGE_VERIFY_HOME/cache/chips)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=build_command("train-siamese", "training"))


def add_attributes(kinds) -> None:
    parser = kinds.add_parser("attributes", help="attribute model with the liveness head",
                              description=ATTRIBUTES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(parser, epochs=10, batch=32,
               out_help="checkpoint folder or .pt file (default: the models folder's attributes.pt, which the build uses)")
    parser.add_argument("--labels", type=Path, metavar="CSV", help="CelebA-style labels (optional for real/fake folders)")
    parser.add_argument("--backbone", choices=("embedding", "small"), default="embedding",
                        help="embedding (default) or small; see above")
    parser.add_argument("--folds", type=int, default=10, help="subject folds for the embedding backbone (default 10)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=build_command("train-attributes", "training"))



def data_with_attack(text: str) -> tuple[Path, str]:
    """DIR=ATTACK (or DIR alone: attacks of type "attack")."""
    folder, _, attack = text.partition("=")
    if not folder:
        raise argparse.ArgumentTypeError(f"expected DIR=ATTACK, got {text!r}")
    return Path(folder), attack.strip() or "attack"


def add_liveness(kinds) -> None:
    parser = kinds.add_parser("liveness", help="liveness cues (texture, context, motion; cnn) for prints and screens",
                              description=LIVENESS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=data_with_attack, action="append", required=True, metavar="DIR=ATTACK",
                        help="a folder with real/ and fake/, and what its fakes are (repeat for more folders)")
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="where the model goes (default $EDGE_VERIFY_HOME/models/liveness.json)")
    parser.add_argument("--target-bpcer", type=float, default=0.025, metavar="RATE",
                        help="share of held-out real frames each frame cue may refuse (default 0.025)")
    parser.add_argument("--augment", type=int, default=2, metavar="N",
                        help="random camera shifts per training frame (default 2)")
    parser.add_argument("--window", type=int, default=5, metavar="FRAMES",
                        help="frames of one face whose mean score is judged (default 5)")
    parser.add_argument("--synthetic-clips", type=int, default=40, metavar="N",
                        help="synthetic flat-attack clips to check the motion cue on (default 40; 0: none)")
    parser.add_argument("--motion-wait", type=int, default=5, choices=(5, 8), metavar="FRAMES",
                        help="frames before a face may be let in, the motion cue's time to see a flat picture "
                             "turn: 5 (default: no wait beyond the frame cues' window) or 8 (more print "
                             "attacks refused, every unlock 3 frames later; see the README)")
    parser.add_argument("--cnn", action="store_true",
                        help="also fit the cnn cue, a small grey network (about 5 minutes per network on 2 cores "
                             "for both shared folders: (--cnn-folds + 1) x --cnn-members networks, about an hour by "
                             "default); see the README for its figures")
    parser.add_argument("--cnn-epochs", type=int, default=8, metavar="N", help="the network's epochs (default 8)")
    parser.add_argument("--cnn-augment", type=int, default=4, metavar="N",
                        help="random camera shifts per frame for the network (default 4)")
    parser.add_argument("--cnn-folds", type=int, default=3, metavar="K",
                        help="networks fitted without a fold of every folder's groups, for its figures (default 3)")
    parser.add_argument("--cnn-members", type=int, default=3, metavar="N",
                        help="networks from different seeds whose mean logit is the cue, in one ONNX file (default "
                             "3: steadier than one training, see the README); each fold's figure uses as many, so "
                             "training takes N times as long as with 1")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--cache", type=Path, metavar="DIR", help="face and feature cache "
                        "(default $EDGE_VERIFY_HOME/cache/liveness)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=build_command("train-liveness", "training"))
