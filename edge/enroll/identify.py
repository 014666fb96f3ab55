"""Who would the kiosk say this photo shows? The installer's check of an enrollment.

The same steps and the same code as the door: the main face (the one the kiosk
would act on, edge.pipeline), its embedding, and the daemon's decision
(edge.daemon.watch.LiveGallery: the nearest enrolled person, at the threshold
edge.daemon.decision.door_threshold gives *combined* probes for the gallery's
current size and the daemon's [decision] settings). The door follows a face and
decides on the combined embedding of its frames (edge.daemon.tracking); a photo
is what the door sees of a person holding still, and several photos of one
person given as one attempt (``identify_combined``, `identify --combine`) are
combined exactly as the door combines the frames of one face: the
quality-weighted mean of their unit embeddings. A photo shows ``person`` only when
the (combined) distance is at or below that threshold.
"""
from __future__ import annotations

import math

from edge.daemon.tracking import combine, frame_weight, usable
from edge.daemon.watch import LiveGallery
from edge.exc import ImageError
from edge.vision.image import load_image


def identify_image(pipeline, gallery: LiveGallery, path) -> dict:
    """{image, person, distance, margin, threshold, nearest, faces[, reason]} for one photo file;
    ``gallery`` is loaded (LiveGallery.load)."""
    try:
        rgb = load_image(path)
    except ImageError as error:
        return {"image": str(path), "person": None, "distance": None, "margin": None,
                "threshold": gallery.combined_threshold, "nearest": None, "faces": None,
                "reason": f"unreadable: {error}"}
    return identify_rgb(pipeline, gallery, rgb, str(path))


def identify_rgb(pipeline, gallery: LiveGallery, rgb, label: str) -> dict:
    """identify_image for a picture already in memory (the console's camera frame)."""
    answer = {"image": label, "person": None, "distance": None, "margin": None,
              "threshold": gallery.combined_threshold, "nearest": None, "faces": 0}
    scene = pipeline.look(rgb)
    answer["faces"] = len(scene.faces)
    if scene.main is None:
        return {**answer, "reason": "no face found"}
    embedding = pipeline.embed(scene.main.chip)[0]
    if not usable(embedding):
        return {**answer, "reason": "the face could not be embedded"}
    return decide(gallery, combine([embedding], unit=pipeline.normalize), answer)


def identify_combined(pipeline, gallery: LiveGallery, paths) -> dict:
    """Several photos of one person as one attempt: {images, photos_combined, person, distance, margin,
    threshold, nearest, faces (per photo; None when unreadable), skipped[, reason]}. Photos without a
    usable face are skipped (named in ``skipped``); the rest are combined as the door combines frames."""
    answer = {"images": [str(path) for path in paths], "photos_combined": 0, "person": None, "distance": None,
              "margin": None, "threshold": gallery.combined_threshold, "nearest": None, "faces": [], "skipped": []}
    embeddings, weights = [], []
    for path in paths:
        try:
            rgb = load_image(path)
        except ImageError as error:
            answer["faces"].append(None)
            answer["skipped"].append(f"{path}: unreadable: {error}")
            continue
        scene = pipeline.look(rgb)
        answer["faces"].append(len(scene.faces))
        if scene.main is None:
            answer["skipped"].append(f"{path}: no face found")
            continue
        embedding = pipeline.embed(scene.main.chip)[0]
        if not usable(embedding):
            answer["skipped"].append(f"{path}: the face could not be embedded")
            continue
        embeddings.append(embedding)
        weights.append(frame_weight(scene.main, pipeline.mean, pipeline.std, pipeline.padding))
    answer["photos_combined"] = len(embeddings)
    if not embeddings:
        return {**answer, "reason": "no photo shows a usable face"}
    return decide(gallery, combine(embeddings, weights, unit=pipeline.normalize), answer)


def decide(gallery: LiveGallery, probe, answer: dict) -> dict:
    """The door's decision on a combined probe, into ``answer``."""
    observation = gallery.match_combined(probe)
    if observation.nearest is None:
        return {**answer, "reason": "nobody is enrolled" if not gallery.names else "the face could not be embedded"}
    answer.update(nearest=observation.nearest, distance=finite(observation.distance),
                  margin=finite(observation.margin))
    if observation.person is not None:
        answer["person"] = observation.person
    else:
        answer["reason"] = (f"nearest is {observation.nearest} at {observation.distance:.3f}, above the threshold "
                            f"{gallery.combined_threshold:.3f}")
    return answer


def finite(value: float) -> float | None:
    """JSON has no infinity: an infinite margin (one person enrolled) is reported as null."""
    return round(float(value), 4) if math.isfinite(value) else None
