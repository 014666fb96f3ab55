"""`edge-verify enroll NAME (--camera URI | --images F...)`: add a person to the gallery."""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from pathlib import Path

from edge import paths
from edge.cli.common import add_engine_arguments, load_pipeline
from edge.daemon import config
from edge.daemon.share import socket_path
from edge.enroll.capture import MIN_GOOD, enroll, image_shots
from edge.enroll.kiosk import kiosk_frames
from edge.enroll.liveness_check import door_cues
from edge.enroll.poses import PER_POSE, pose_plan
from edge.exc import ConfigError
from edge.gallery import authorise, open_gallery
from edge.gallery.auth import token_from

HELP = """\
Enroll a person: take good frames of their face, make templates, store them
(encrypted) in the gallery. Needs the admin token (--token or
EDGE_VERIFY_ADMIN_TOKEN; set it once with `edge-verify admin set-token`).

At the kiosk:   edge-verify enroll "Ada Lovelace" --camera csi://0
From photos:    edge-verify enroll "Ada Lovelace" --images ada1.jpg ada2.jpg ada3.jpg ada4.jpg ada5.jpg

At the camera, enrollment asks for a few looks in turn (the prompts are printed):
straight at the camera, slightly to the person's left, slightly to their right,
and with --glasses (for a person who wears glasses, with them on first) once more
without them; it takes --per-pose good frames of each and keeps the --count that
add the most (the most typical first, then each time the one least like those
kept). --no-poses takes any --count good frames instead. `edge-verify gallery
show NAME` then says which looks are covered. Every frame is checked: exactly one face, large
enough, sharp, upright and facing the camera, not too dark, too bright or too
flat. Rejected frames are listed with the reason and the measured value, e.g.
"too blurred: sharpness 9.1 < 18". Enrollment stops at --count good frames, or
fails, storing nothing, when the source ends (or --timeout passes) with fewer
than --min-count. Then check the result with `edge-verify identify PHOTO`.

Before storing, the door's own question: would the door take this face for
someone already enrolled? The good frames are combined into one probe, as the
door combines the frames of a face it follows, and decided with the door's
threshold for the gallery's size with this person in it ([decision] settings
from --config FILE, default /etc/edge-verify/config.toml when it exists). If
it would, enrollment is refused (exit code 4) unless --force (the same person
under another name; --force is recorded in the audit log). Frames that show more
than one person are always refused; --force does not change that. An enrolled
NAME is refused unless --append (more templates for that person, e.g. with
glasses); appended frames that do not look like that person are refused.

At the camera, each good frame is also judged by the door's liveness cues (the
liveness model and [liveness] cues of the config, as the daemon loads them).
When at least half of the stored frames are called attacks, enrollment warns
that the door will likely refuse this person at this camera and in this light,
naming the cue, and stores them anyway; each template's quality note keeps its
frame's verdict (`gallery show NAME`). Photos are not judged.
The gallery and its key are created on first use under $EDGE_VERIFY_HOME
(or --gallery/--key); keep the key file private and backed up.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("enroll", help="enroll a person from the camera or from photos (admin token)",
                                   description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", metavar="NAME", help="the person's name as the kiosk will log it")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--camera", metavar="URI",
                        help="camera or video: csi://0, v4l2:///dev/video0, rtsp://..., file://clip.avi, dir://folder; "
                        "the daemon's camera (or 'daemon') while the daemon runs: its frames, door held locked")
    source.add_argument("--images", metavar="F", nargs="+", type=Path, help="photo files of the person, one face each")
    parser.add_argument("--count", type=int, default=5, help="good frames to keep (default: 5)")
    parser.add_argument("--min-count", type=int, default=None,
                        help="fewest good frames accepted when the source ends early (default: 3, or --count if less)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S",
                        help="--camera: give up after S seconds without enough good frames (default: 30)")
    parser.add_argument("--interval", type=float, default=0.3, metavar="S",
                        help="--camera: take at most one frame per S seconds, so templates differ (default: 0.3)")
    parser.add_argument("--glasses", action="store_true",
                        help="--camera: the person wears glasses: the looks with them on, then one without")
    parser.add_argument("--no-poses", action="store_true",
                        help="--camera: do not ask for looks in turn; keep the first --count good frames")
    parser.add_argument("--per-pose", type=int, default=PER_POSE, metavar="N",
                        help=f"--camera: good frames taken of each look (default: {PER_POSE})")
    parser.add_argument("--force", action="store_true",
                        help="enroll even when the door would take this face for a person of another name (recorded "
                        "in the audit log); never enrolls frames of two people")
    parser.add_argument("--append", action="store_true", help="add templates to a person already enrolled as NAME")
    parser.add_argument("--token", metavar="T", help="admin token (default: $EDGE_VERIFY_ADMIN_TOKEN)")
    parser.add_argument("--gallery", metavar="PATH", type=Path,
                        help="gallery file (default: $EDGE_VERIFY_HOME/gallery.sqlite; created if missing)")
    parser.add_argument("--key", metavar="PATH", type=Path,
                        help="key file (default: gallery.key in $EDGE_VERIFY_HOME; created with a new gallery)")
    parser.add_argument("--json", action="store_true",
                        help="print the result as JSON on stdout (progress stays on stderr)")
    parser.add_argument("--config", metavar="FILE",
                        help=f"the daemon's config file, for its [decision] settings (default: {config.DEFAULT_PATH} "
                        "when it exists)")
    parser.add_argument("--no-config", action="store_true", help="ignore the default config file: built-in defaults")
    parser.add_argument("--daemon-socket", metavar="PATH", type=Path,
                        help="the running daemon's socket (default: [console] daemon_socket of the config file, "
                        "else $EDGE_VERIFY_HOME/daemon.sock)")
    add_engine_arguments(parser, threads_default=None)
    parser.set_defaults(func=run)


def run(args) -> int:
    check_numbers(args)
    settings = config.from_command_line(args.config, args.no_config)
    gallery_path = args.gallery if args.gallery is not None else paths.gallery_path()
    actor = authorise(gallery_path, token_from(args.token), args.key)
    pipeline = load_pipeline(args)
    with frames_for(args, actor, settings) as frames, \
            open_gallery(gallery_path, args.key, create=True, actor=actor) as gallery:
        result = enroll(args.name, pipeline, gallery, frames, count=args.count, force=args.force, append=args.append,
                        actor=actor, min_count=args.min_count, report=progress, decision=settings.decision,
                        poses=poses_for(args), per_pose=args.per_pose, liveness=liveness_for(args, settings, pipeline))
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        verb = "added" if result.appended else "enrolled"
        print(f"{verb} {result.name}: {result.templates} template{'s' if result.templates != 1 else ''} from "
              f"{result.frames} frame{'s' if result.frames != 1 else ''} ({len(result.rejected)} rejected)")
    return 0


def frames_for(args, actor: str, settings):
    """Photos; or the camera: the running daemon's frames (door held locked) when it runs this camera."""
    if args.images:
        return nullcontext(image_shots(args.images))
    path = args.daemon_socket or socket_path(settings)
    return kiosk_frames(args.camera, path, actor, f"enrollment of {args.name}", args.timeout, args.interval,
                        report=progress)


def liveness_for(args, settings, pipeline):
    """The door's frame cues, to judge camera frames with; photos are not judged (a scan is a print)."""
    return None if args.images else door_cues(settings, pipeline, progress)


def poses_for(args):
    """The looks to ask for: at the camera unless --no-poses; photos are taken as they are."""
    if args.images or args.no_poses:
        return None
    return pose_plan(glasses=args.glasses)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def check_numbers(args) -> None:
    if args.count < 1:
        raise ConfigError(f"--count must be at least 1, got {args.count}")
    if args.min_count is None:
        args.min_count = min(MIN_GOOD, args.count)
    if args.min_count < 1:
        raise ConfigError(f"--min-count must be at least 1, got {args.min_count}")
    if args.min_count > args.count:
        raise ConfigError(f"--min-count ({args.min_count}) cannot exceed --count ({args.count})")
    if not args.timeout > 0 or args.interval < 0:
        raise ConfigError("--timeout must be positive and --interval zero or more")
    if args.per_pose < 1:
        raise ConfigError(f"--per-pose must be at least 1, got {args.per_pose}")
    if args.images and (args.glasses or args.no_poses):
        raise ConfigError("--glasses and --no-poses are for --camera: photos are taken as they are")
