"""Who would the kiosk say this photo shows? The installer's check of an enrollment.

The same steps and the same code as the door, for one photo: the main face (the
one the kiosk would act on, edge.pipeline), its embedding, and the daemon's
decision for one face (edge.daemon.watch.LiveGallery: the nearest enrolled
person, and the threshold edge.daemon.decision.door_threshold gives for the
gallery's current size and the daemon's [decision] settings). A photo shows
``person`` only when the distance is at or below that threshold.
"""
from __future__ import annotations

import math

from edge.daemon.watch import LiveGallery
from edge.exc import ImageError
from edge.vision.image import load_image


def identify_image(pipeline, gallery: LiveGallery, path) -> dict:
    """{image, person, distance, margin, threshold, nearest, faces[, reason]} for one photo file;
    ``gallery`` is loaded (LiveGallery.load)."""
    try:
        rgb = load_image(path)
    except ImageError as error:
        return {"image": str(path), "person": None, "distance": None, "margin": None, "threshold": gallery.threshold,
                "nearest": None, "faces": None, "reason": f"unreadable: {error}"}
    return identify_rgb(pipeline, gallery, rgb, str(path))


def identify_rgb(pipeline, gallery: LiveGallery, rgb, label: str) -> dict:
    """identify_image for a picture already in memory (the console's camera frame)."""
    answer = {"image": label, "person": None, "distance": None, "margin": None, "threshold": gallery.threshold,
              "nearest": None, "faces": 0}
    scene = pipeline.look(rgb)
    answer["faces"] = len(scene.faces)
    if scene.main is None:
        return {**answer, "reason": "no face found"}
    observation = gallery.match(pipeline.embed(scene.main.chip)[0])
    if observation.nearest is None:
        return {**answer, "reason": "nobody is enrolled" if not gallery.names else "the face could not be embedded"}
    answer.update(nearest=observation.nearest, distance=finite(observation.distance),
                  margin=finite(observation.margin))
    if observation.person is not None:
        answer["person"] = observation.person
    else:
        answer["reason"] = (f"nearest is {observation.nearest} at {observation.distance:.3f}, above the threshold "
                            f"{gallery.threshold:.3f}")
    return answer


def finite(value: float) -> float | None:
    """JSON has no infinity: an infinite margin (one person enrolled) is reported as null."""
    return round(float(value), 4) if math.isfinite(value) else None
