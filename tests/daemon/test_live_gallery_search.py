"""The daemon's gallery prepares its matrix at every load: after a change the prepared search
(lower-bound projection included) answers for the new templates, exactly as the plain search."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edge.daemon.watch import LiveGallery
from edge.gallery.search import PRUNE_FROM_ROWS, search

MANIFEST = {"model": "test_model", "embedding_normalization": "l2", "threshold": 0.5,
            "outputs": [{"shape": [1, 128]}]}


def face_like(rng, people: int, per_person: int = 5) -> np.ndarray:
    """Unit rows clustered by person, most variance on 24 random axes (so the projection is kept)."""
    axes = np.linalg.qr(rng.standard_normal((128, 128)))[0]
    spectrum = np.where(np.arange(128) < 24, 1.0, 0.12)
    centres = (rng.standard_normal((people, 128)) * spectrum) @ axes.T
    rows = np.repeat(centres, per_person, axis=0) + 0.3 * (rng.standard_normal((people * per_person, 128)) * spectrum) @ axes.T
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


class ChangingGallery:
    """Just what LiveGallery reads of a Gallery: its state, its matrix, whether the file was replaced."""

    path = Path("gallery.sqlite")

    def __init__(self, matrix: np.ndarray):
        self.generation = 0
        self.set(matrix)

    def set(self, matrix: np.ndarray) -> None:
        self.generation += 1
        self.matrix = matrix
        self.names = [f"person {n:05d}" for n in range(len(matrix) // 5)]

    def state(self):
        return ("gallery", self.generation, None)

    def replaced(self) -> bool:
        return False

    def reopen(self) -> "ChangingGallery":
        return self

    def load_matrix(self, model=None):
        return list(self.names), np.arange(len(self.matrix)) // 5, self.matrix.copy()


def test_a_reload_prepares_the_new_gallery_and_matches_as_the_plain_search():
    rng = np.random.default_rng(21)
    people = PRUNE_FROM_ROWS // 5 + 1
    before, after = face_like(rng, people), face_like(rng, people)
    gallery = ChangingGallery(before)
    now = [0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test manifest has no impostor tail
        live = LiveGallery(gallery, MANIFEST, reload_s=1.0, clock=lambda: now[0])
        live.load()
        old_axes = live.searched.projection.axes
        gallery.set(after)
        now[0] = 5.0
        assert live.refresh()
    assert live.searched.projection is not None and not np.allclose(live.searched.projection.axes, old_axes)
    index = np.arange(len(after)) // 5
    for probe in (after[7], after[3000] + 0.02, before[7]):
        probe = probe / np.linalg.norm(probe)
        observation = live.match(probe)
        expected = search(after, index, gallery.names, probe)
        assert (observation.nearest, observation.distance, observation.margin) == \
            (expected.person, expected.distance, expected.margin)
    assert live.match(after[7]).person == gallery.names[1]  # its own template, distance 0
    assert not live.matrix.flags.writeable


class SlowGallery(ChangingGallery):
    """A gallery whose reading takes ``load_s`` of the test clock."""

    def __init__(self, matrix, clock: list, load_s: float):
        self.clock, self.load_s = clock, load_s
        super().__init__(matrix)

    def load_matrix(self, model=None):
        self.clock[0] += self.load_s
        return super().load_matrix(model)


def test_a_slow_load_does_not_put_off_the_next_poll():
    """Polls are reload_s apart from the start of each poll: a change (a removal) is seen within reload_s
    of the poll that last loaded, however long that load took."""
    rng = np.random.default_rng(3)
    now = [0.0]
    gallery = SlowGallery(face_like(rng, 4), now, load_s=0.6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test manifest has no impostor tail
        live = LiveGallery(gallery, MANIFEST, reload_s=1.0, clock=lambda: now[0])
        live.load()  # from 0.0 to 0.6
        gallery.set(face_like(rng, 3))
        now[0] = 1.0  # 1 s after the first load started: time to look again
        assert live.refresh() and len(live.names) == 3  # reloaded, from 1.0 to 1.6
        gallery.set(face_like(rng, 2))
        now[0] = 1.9
        assert not live.refresh()  # not yet 1 s since the last poll began
        now[0] = 2.0
        assert live.refresh() and len(live.names) == 2
