"""The gallery as the daemon sees it: one matrix in memory, reloaded when it changes.

Enrollment and removal happen in other processes while the daemon runs. The
daemon polls ``Gallery.state()`` (one SQLite read) every ``reload_s`` seconds
and loads the matrix again only when it moved, then recomputes the 1:N
threshold for the new number of templates. A gallery that became unreadable or
corrupt while running raises: the daemon exits with the door locked and
systemd restarts it, which then refuses to start until the file is restored.

A restore puts another file at the gallery's path (the old one moved aside or
deleted, a backup imported or copied in). An open SQLite connection keeps reading
the old file, so each poll also compares the path's device and inode with the
file that was opened: when they differ the new file is opened and read, and while
no file is there nobody is recognised.
"""
from __future__ import annotations

import logging
import math
import time
import warnings
from typing import Callable, Optional

import numpy as np

from edge.daemon.decision import (ADJUSTED, DEFAULT_STRANGER_RATE, NO_COMBINED_TAIL, Observation, combined_cohort,
                                  door_threshold, match_probe)
from edge.exc import GalleryError
from edge.gallery.search import PreparedMatrix, prepare
from edge.gallery.store import file_id
from edge.gallery.threshold import COMBINED_TAIL, OpenSetChoice, ThresholdFallbackWarning, impostor_tail
from edge.verify.api import embedding_space

log = logging.getLogger(__name__)


def embedding_dim(manifest: dict) -> int:
    return int(manifest["outputs"][0]["shape"][-1])


class LiveGallery:
    """The gallery matrix, its thresholds (:func:`edge.daemon.decision.door_threshold`, for single and for
    combined probes) and the match rule: the daemon's decision for one face, which `edge-verify identify`
    uses as well."""

    def __init__(self, gallery, manifest: dict, threshold: Optional[float] = None,
                 stranger_rate: float = DEFAULT_STRANGER_RATE, reload_s: float = 1.0,
                 clock: Callable[[], float] = None, reopen: Optional[Callable] = None):
        self.gallery = gallery
        self.path = gallery.path
        self._reopen = reopen or gallery.reopen  # a fresh Gallery for whatever file is at the path now
        self.manifest = manifest
        self.model = embedding_space(manifest)
        self.dim = embedding_dim(manifest)
        self.fixed_threshold = threshold
        self.stranger_rate = stranger_rate
        self.reload_s = reload_s
        self.clock = clock or time.monotonic
        self.version = None
        self.names: list = []
        self.person_index = np.zeros(0, dtype=np.intp)
        self.searched: PreparedMatrix = prepare(np.zeros((0, self.dim), dtype=np.float32))
        # combined probes are judged by cohort-adjusted distances when the engine ships a cohort
        self.cohort = combined_cohort(manifest)
        self.threshold = math.nan
        self.choice: Optional[OpenSetChoice] = None
        self.combined_threshold = math.nan
        self.combined_choice: Optional[OpenSetChoice] = None
        self._polled_at = -math.inf
        if impostor_tail(manifest) is None and threshold is None:
            log.warning("the engine manifest has no impostor tail: using its 1:1 threshold %.3f, which lets in "
                        "more strangers as the gallery grows; rebuild the engine to get the 1:N rule",
                        float(manifest["threshold"]))
        elif impostor_tail(manifest, COMBINED_TAIL) is None and threshold is None:
            log.warning("%s", NO_COMBINED_TAIL)

    @property
    def matrix(self) -> np.ndarray:
        """The templates, one row each (read-only: searches use the norms kept when it was loaded)."""
        return self.searched.matrix

    @property
    def templates(self) -> int:
        return int(len(self.matrix))

    def load(self) -> None:
        """Read the gallery now (version first: a change in between only costs one more reload)."""
        started = self.clock()
        version = self.gallery.state()
        names, person_index, matrix = self.gallery.load_matrix(model=self.model)
        if len(matrix) and matrix.shape[1] != self.dim:
            raise GalleryError(f"gallery {self.gallery.path} holds {matrix.shape[1]}-d templates but the engine "
                               f"gives {self.dim}-d embeddings: enroll everyone again with this engine")
        # prepared once per load, so each frame's search is one pass over the matrix
        self.names, self.person_index, self.searched = list(names), person_index, prepare(np.ascontiguousarray(matrix))
        self.version = version
        self.choice = door_threshold(self.manifest, self.templates, self.fixed_threshold, self.stranger_rate)
        if self.choice.rule == "1:1 fallback":
            warnings.warn(self.choice.note, ThresholdFallbackWarning, stacklevel=2)
        self.threshold = self.choice.threshold
        self.combined_choice = door_threshold(self.manifest, self.templates, self.fixed_threshold, self.stranger_rate,
                                              combined=True)
        self.combined_threshold = self.combined_choice.threshold
        # polls are reload_s apart from the start of the one that loaded, not from the end of the load: a
        # removal is then seen within reload_s however long the previous load took
        self._polled_at = max(self._polled_at, started)

    def refresh(self) -> bool:
        """Reload if the gallery changed since the last look (at most every ``reload_s``); True if it did."""
        now = self.clock()
        if now - self._polled_at < self.reload_s:
            return False
        self._polled_at = now
        if self.gallery is None or self.gallery.replaced():
            return self._follow_path()
        if self.gallery.state() == self.version:
            return False
        self.load()
        return True

    def _follow_path(self) -> bool:
        """Read the file now at the gallery's path, or recognise nobody while none is there; True if that changed
        anything. A file that cannot be opened (damaged, another key) raises: the door stays locked."""
        if self.gallery is not None:
            self.gallery.close()
            self.gallery = None
            log.warning("the gallery file %s was moved, deleted or replaced (a restore?): reading what is at that "
                        "path now", self.path)
        if file_id(self.path) is None:
            changed = self.version is not None
            self.names, self.person_index = [], np.zeros(0, dtype=np.intp)
            self.searched, self.version = prepare(np.zeros((0, self.dim), dtype=np.float32)), None
            if changed:
                log.warning("no gallery at %s: nobody is let in until one is restored there", self.path)
            return changed
        self.gallery = self._reopen()
        self.load()
        return True

    def match(self, embedding) -> Observation:
        """The decision for a single-frame (or single-photo) probe."""
        return match_probe(self.searched, self.person_index, self.names, embedding, self.threshold)

    def match_combined(self, probe) -> Observation:
        """The decision for a combined probe (edge.daemon.tracking.combine): the combined probes' threshold,
        on the cohort-adjusted distance when the engine ships a cohort (edge.gallery.cohort)."""
        return match_probe(self.searched, self.person_index, self.names, probe, self.combined_threshold,
                           self.cohort)

    def describe(self) -> str:
        people = len(self.names)
        return (f"{people} {'person' if people == 1 else 'people'} ({self.templates} templates), "
                f"threshold {self.combined_threshold:.3f} for combined frames"
                f"{ADJUSTED if self.cohort is not None else ''} ({self.threshold:.3f} for one)")
