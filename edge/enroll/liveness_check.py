"""Would the door's liveness cues refuse this person at this camera? Asked while enrolling them.

The cues were fitted and validated on two folders' cameras and people. For some
real faces, and on some cameras, a cue takes a real person for a print or a
screen: NUAA subject 0004, held out, had half his real clips refused by the cnn
cue, and it called 374 of 400 LFW news photos of real people attacks (README,
"Real faces from other cameras"). The door then refuses that person at every visit,
and nobody learns why until they complain. The enrollment frames are that
person, at this camera, in this light: each good frame is judged alone by the
door's frame cues (as `edge-verify liveness PHOTO` judges a photo), the verdict
goes into the frame's quality note, and when at least half of the stored frames
are called attacks the installer is warned now, with the cue that refused,
while the light or the camera can still be changed.

Why half: the door judges the mean score of a window of frames (5 by default)
and keeps a call for the rest of the track. A person with the odd frame called
an attack (a blink, a shadow; a cue refuses a few % of real frames) usually
gets in; one with half their frames on the attack side has most windows there
and is refused most visits. A warning, not a refusal: the person is enrolled
either way, the door stays as strict, and turning a cue off is the site's
choice (`[liveness] cues`), never the enrollment's.

Only frames from a camera are judged: a photo given with --images may be a
scan or a print, which the cues rightly call an attack.
"""
from __future__ import annotations

from edge.daemon.parts import configured_cues
from edge.exc import EdgeVerifyError, NoLivenessCheck
from edge.liveness.check import judge_alone
from edge.liveness.judge import check_colour_chips
from edge.pipeline import MainFace

WARN_SHARE = 0.5


def door_cues(settings, pipeline, report):
    """The frame cues the door runs with these daemon settings (edge.liveness.judge.Liveness), or None:
    liveness off, none trained (then the door refuses no real face for liveness), or cues that cannot be
    loaded (said through ``report``: the daemon would say it too, and the caller goes on without)."""
    if settings["decision.liveness"] == "off":
        return None
    try:
        # each frame is judged alone: the active check (a head turn over frames) does not apply
        liveness = configured_cues(settings, active=False)
        check_colour_chips(liveness, pipeline.manifest)
    except NoLivenessCheck:
        return None
    except EdgeVerifyError as error:
        report(f"warning: the door's liveness cues cannot be loaded ({error}); this enrollment does not check "
               "whether they would refuse the person")
        return None
    return liveness


def frame_note(liveness, image, main: MainFace) -> dict:
    """{"live", "refused_by"} of one RGB frame and its MainFace, judged alone by the frame cues."""
    verdict = judge_alone(liveness, image, main)
    return {"live": bool(verdict.live), "refused_by": verdict.refused_by}


def refusals(notes: list) -> tuple[int, int, str]:
    """(frames judged, frames refused, "cnn on 4, texture on 1") of liveness notes (None: not judged)."""
    judged = [note for note in notes if note is not None]
    cues: dict = {}
    for note in judged:
        if not note["live"]:
            cue = note["refused_by"] or "no cue named"
            cues[cue] = cues.get(cue, 0) + 1
    by = ", ".join(f"{cue} on {count}" for cue, count in sorted(cues.items(), key=lambda item: -item[1]))
    return len(judged), sum(cues.values()), by


def refused_mostly(judged: int, refused: int) -> bool:
    """Half or more of the judged frames called attacks: the door would refuse this face most visits."""
    return judged > 0 and refused >= WARN_SHARE * judged


def refusal_warning(name: str, notes: list) -> str | None:
    """The warning for the stored frames' liveness notes (None entries: frames not judged), or None."""
    judged, refused, by = refusals(notes)
    if not refused_mostly(judged, refused):
        return None
    return (f"the door's liveness cues call {refused} of {judged} of {name}'s frames an attack ({by}): "
            f"at this camera and in this light the door will likely refuse {name}. {name} was enrolled; check the "
            f"light on the face (no strong light behind, no glare, not too dark), then judge a clip of {name} at the "
            f"door with `edge-verify liveness CLIP`. If most people get this warning here, the liveness model does "
            f"not know this camera: train it on this camera's real and attack frames (README, liveness)")
