"""How well do a person's templates cover them? What `edge-verify gallery show NAME` says.

From the stored quality notes (the head's yaw when each template was taken, the
pose asked for at a guided camera enrollment) and from the templates themselves:

  * looks: whether a frontal look and a slight turn to each side are among the
    templates (the door sees people walking up at an angle);
  * spread: the mean distance between two templates (unit length). Copies of one
    moment spread little and cover one look only;
  * recognised: for each template, whether the door would recognise that look from
    the *other* templates, at the door's threshold for this gallery. A template the
    others do not recognise is a look the rest do not cover (or a poor frame).

The verdict is "good" when the three looks are there and every template is
recognised by the others; otherwise "partial", with what to add.

``person_coverage`` measures one enrolled person of a gallery and ``describe`` puts it
in words: `gallery show NAME` and the kiosk's console both call them, so the
installer reads the same verdict wherever they look.
"""
from __future__ import annotations

import math

import numpy as np

from edge.enroll.one_person import pairwise_distances, unit_rows
from edge.enroll.poses import FRONT_MAX_DEG, TURN_DEG

LOOKS = ("front", "left", "right")


def look_of(yaw: float) -> str | None:
    """The look a yaw (degrees, edge.enroll.quality.pose's sign) shows, or None between them."""
    if abs(yaw) <= FRONT_MAX_DEG:
        return "front"
    if yaw >= TURN_DEG[0]:
        return "left"
    if yaw <= -TURN_DEG[0]:
        return "right"
    return None


def coverage(notes: list, vectors, threshold: float | None, cohort=None) -> dict:
    """{templates, looks, missing, yaw_range, poses, spread, recognised, verdict, advice} for one person.

    ``notes``: each template's quality note (dict or None); ``vectors``: the templates, (K, D);
    ``threshold``: the door's threshold for this gallery (None when unknown: recognised is then None);
    ``cohort``: the door's (edge.daemon.decision.combined_cohort), whose adjusted distances that threshold
    is for (spread stays the plain mean distance).
    """
    rows = np.asarray(vectors, dtype=np.float64)
    yaws = [float(note["yaw_deg"]) for note in notes if note and note.get("yaw_deg") is not None]
    looks = sorted({look for look in map(look_of, yaws) if look is not None}, key=LOOKS.index)
    poses = sorted({note["pose"] for note in notes if note and note.get("pose")})
    missing = [look for look in LOOKS if look not in looks] if yaws else list(LOOKS)
    spread = recognised = None
    if len(rows) >= 2:
        units = unit_rows(rows)
        distances = pairwise_distances(units)
        spread = round(float(distances[np.triu_indices(len(rows), 1)].mean()), 4)
        if threshold is not None and math.isfinite(threshold):
            if cohort is not None:
                spreads = cohort.spreads(units)
                distances = cohort.adjust(distances, spreads[:, None], spreads[None, :])
            np.fill_diagonal(distances, np.inf)
            recognised = int(np.sum(distances.min(axis=1) <= threshold))
    good = not missing and recognised == len(rows) and len(rows) >= 3
    return {"templates": int(len(rows)), "looks": looks, "missing": missing, "poses": poses,
            "yaw_range": [round(min(yaws), 1), round(max(yaws), 1)] if yaws else None, "spread": spread,
            "recognised": recognised, "threshold": threshold, "verdict": "good" if good else "partial",
            "advice": advice(missing, recognised, len(rows))}


def advice(missing: list, recognised: int | None, templates: int) -> str | None:
    wanted = []
    if missing:
        names = {"front": "looking straight", "left": "turned slightly to their left",
                 "right": "turned slightly to their right"}
        wanted.append("frames " + " and ".join(names[look] for look in missing))
    if recognised is not None and recognised < templates:
        wanted.append(f"{templates - recognised} template(s) the others do not recognise: re-enroll if the person's "
                      "look has changed")
    if templates < 3:
        wanted.append("at least 3 templates")
    if not wanted:
        return None
    return "; ".join(wanted) + " (`edge-verify enroll NAME --append --camera URI` asks for the looks in turn)"


def person_coverage(gallery, shown: dict, threshold: float | None, loaded=None, cohort=None) -> dict:
    """The coverage of one enrolled person: ``shown`` is ``gallery.show(NAME)``, ``threshold`` the door's for
    this gallery (edge.daemon.decision.door_threshold, for combined probes); ``loaded``: the gallery's
    ``load_matrix()`` when the caller has it already (a list of many people loads it once); ``cohort``: the
    door's, when that threshold is for adjusted distances (edge.daemon.decision.combined_cohort)."""
    names, index, matrix = loaded if loaded is not None else gallery.load_matrix()
    rows = matrix[index == names.index(shown["name"])] if shown["name"] in names else matrix[:0]
    return coverage([template["quality"] for template in shown["templates"]], rows, threshold, cohort)


def verdict_words(found: dict) -> str:
    """The short form: "coverage good" or "coverage partial"."""
    return f"coverage {found['verdict']}"


def describe(found: dict) -> str:
    """The verdict with what it rests on, then (on a second line) what to add."""
    looks = ", ".join(found["looks"]) or "unknown (no yaw in the quality notes)"
    text = f"{verdict_words(found)}: looks {looks}"
    if found["yaw_range"] is not None:
        text += f" (yaw {found['yaw_range'][0]:+.0f} to {found['yaw_range'][1]:+.0f} deg)"
    if found["spread"] is not None:
        text += f"; spread {found['spread']:.3f}"
    if found["recognised"] is not None:
        text += f"; {found['recognised']} of {found['templates']} templates recognised from the others"
    return text + (f"\n  add: {found['advice']}" if found["advice"] else "")
