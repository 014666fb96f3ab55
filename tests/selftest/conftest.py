"""A kiosk in a temporary folder: real clips written with cv2.VideoWriter, the real
engines, a real gallery enrolled from the fixture photos, a daemon config file,
and `edge-verify selftest` run as a subprocess on mock GPIO pins."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.verify.api import embedding_space

SIZE = (250, 250)  # the fixture photos' size
FPS = 25.0
PEOPLE = ("Colin_Powell", "Serena_Williams", "Tony_Blair")


def write_clip(path: Path, images, frames_each: int = 4, fps: float = FPS) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, SIZE)
    assert writer.isOpened()
    for image in images:
        for _ in range(frames_each):
            writer.write(image)
    writer.release()
    return path


@pytest.fixture(scope="session")
def clips(tmp_path_factory, face_images) -> dict:
    """{"faces": photos of several people, "frozen": one photo repeated, "black": a black picture}."""
    folder = tmp_path_factory.mktemp("clips")
    photos = [cv2.imread(str(path)) for paths in face_images.values() for path in paths[:2]]
    black = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    return {
        "faces": write_clip(folder / "faces.avi", photos[:12], frames_each=4),
        "frozen": write_clip(folder / "frozen.avi", [photos[0]], frames_each=50),
        "black": write_clip(folder / "black.avi", [black], frames_each=50),
    }


@pytest.fixture(scope="session")
def kiosk(tmp_path_factory, models_ready, pipeline, face_images, clips) -> dict:
    """A kiosk home (models linked in, gallery + key enrolled from real photos) and its config file."""
    from edge.gallery import open_gallery
    from edge.vision.image import load_image

    home = tmp_path_factory.mktemp("kiosk-home")
    (home / "models").symlink_to(Path(models_ready).resolve(), target_is_directory=True)
    with open_gallery(home / "gallery.sqlite", home / "gallery.key", create=True, actor="test") as gallery:
        for person in PEOPLE:
            vectors = np.stack([pipeline.embed_primary(load_image(path), str(path)) for path in face_images[person][:2]])
            gallery.add_person_templates(person, vectors, model=embedding_space(pipeline.manifest), actor="test")
    config = home / "config.toml"
    config.write_text(
        f'[source]\nuri = "file://{clips["faces"]}"\ntimeout_s = 2.0\n\n'
        '[door]\npin = "BOARD11"\nactive_high = true\nsensor_pin = "BOARD13"\nexit_pin = "BOARD15"\n\n'
        f'[gallery]\npath = "{home / "gallery.sqlite"}"\n\n'
        f'[events]\nfile = "{home / "logs" / "events.jsonl"}"\n'
    )
    return {"home": home, "config": config, "gallery": home / "gallery.sqlite", "key": home / "gallery.key"}
