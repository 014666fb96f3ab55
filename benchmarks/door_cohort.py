"""The cohort the starter model ships (edge.gallery.cohort) and the adjusted distances its tail is made of.

The cohort is the calibration people of benchmarks/door_clips.py (never staff,
strangers or distractors at 158 or 1,000 enrolled), at most CAP photos each,
stored as float16 as the manifest stores it. k and the weight were chosen on
calibration people alone (benchmarks/cohort_choice.py).

Measuring the tail on the cohort's own people needs care: were a calibration
stranger's lookalike in the cohort, the stranger's spread would be small
*because of* that lookalike, and the pair would look less alike than a site's
stranger and their enrolled lookalike, neither of them in the cohort. So for
every pair both people are taken out of both spreads (``pair_spreads``): the
cohort each pair sees holds neither of them, as in the field.
"""
from __future__ import annotations

import numpy as np

import door_clips
import lfw_same_faces
from edge.gallery.cohort import Cohort, encode_faces
from edge.verify.api import l2_normalize

K = 10
WEIGHT = 1.0
CAP = 10  # photos per cohort person: a few people with hundreds of photos would make every neighbourhood
TOP = 40  # nearest cohort faces kept per face: enough for k after taking out two people's photos


def face_number(keys: dict, name: str) -> int:
    """One integer per face (LFW's faces filed under two names share one: benchmarks/lfw_same_faces.py)."""
    return keys.setdefault(lfw_same_faces.face_key(name), len(keys))


def build(plan: dict, counts: dict, photos: dict, keys: dict) -> tuple[Cohort, np.ndarray, dict]:
    """(the cohort, each face's person number, its manifest entry without the offset filled in)."""
    rows, owners = [], []
    for person in sorted(plan["split"]["calibration"]):
        for number in range(1, min(counts[person], CAP) + 1):
            vector = photos.get(door_clips.image_name(person, number))
            if vector is not None:
                rows.append(vector)
                owners.append(face_number(keys, person))
    faces = l2_normalize(np.stack(rows)).astype("<f2")  # as the manifest stores them
    owners = np.array(owners)
    cohort = Cohort(faces.astype(np.float32), K, WEIGHT, 0.0)
    d, o = nearest(cohort, cohort.faces)
    typical = float(np.median(spread_without(d, o, owners, owners)))
    entry = {"rows": int(len(faces)), "dim": int(faces.shape[1]), "k": K, "weight": WEIGHT,
             "offset": round(WEIGHT * typical, 6), "float16_base64": encode_faces(faces),
             "source": f"{len(faces)} LFW photos of {len(set(owners.tolist()))} calibration people "
                       f"(benchmarks/door_cohort.py), at most {CAP} each; offset = weight x their median spread"}
    return Cohort(cohort.faces, K, WEIGHT, entry["offset"]), owners, entry


def nearest(cohort: Cohort, vectors: np.ndarray):
    """(distances, face positions) of the TOP nearest cohort faces of each vector, nearest first."""
    units = l2_normalize(vectors)
    distances = np.sqrt(np.maximum(2.0 - 2.0 * (units @ cohort.faces.T), 0.0)).astype(np.float64)
    top = np.argpartition(distances, TOP, axis=1)[:, :TOP]
    taken = np.take_along_axis(distances, top, 1)
    order = np.argsort(taken, axis=1)
    return np.take_along_axis(taken, order, 1), np.take_along_axis(top, order, 1)


def spread_without(d: np.ndarray, o: np.ndarray, owners: np.ndarray, *left_out) -> np.ndarray:
    """Per row, the mean of the K nearest cohort distances whose person is none of ``left_out`` (each a
    number or one number per row) nor the row's own face (a cohort face is not its own neighbour)."""
    people = owners[o]
    keep = d > 0.0
    for person in left_out:
        person = np.asarray(person)
        keep &= people != (person[:, None] if person.ndim else person)
    take = keep & (np.cumsum(keep, axis=1) <= K)
    return (d * take).sum(1) / np.maximum(take.sum(1), 1)


class PairSpreads:
    """Spreads of probes and templates with both people of each pair out of the cohort."""

    def __init__(self, cohort: Cohort, owners: np.ndarray, templates: np.ndarray, template_people: np.ndarray):
        self.cohort, self.owners, self.template_people = cohort, owners, template_people
        self.t_d, self.t_o = nearest(cohort, templates)

    def adjusted(self, distances: np.ndarray, probes: np.ndarray, probe_person: int) -> np.ndarray:
        """Adjusted distances (probes x templates) for one person's probes."""
        template_spreads = spread_without(self.t_d, self.t_o, self.owners, self.template_people, probe_person)
        p_d, p_o = nearest(self.cohort, probes)
        out = np.empty_like(distances)
        for row in range(len(probes)):
            d, o = p_d[row:row + 1], p_o[row:row + 1]
            spreads = np.full(distances.shape[1], spread_without(d, o, self.owners, probe_person)[0])
            # only a candidate among the probe's nearest cohort faces changes the probe's spread
            for person in set(self.owners[o[0, :K + CAP]].tolist()):
                spreads[self.template_people == person] = spread_without(d, o, self.owners, probe_person, person)[0]
            out[row] = self.cohort.adjust(distances[row], spreads, template_spreads)
        return out
