"""Gallery checks: the key is there and private, the file opens and decrypts, the
audit chain is intact, who is enrolled, the templates fit the engine, and the
match threshold for this gallery size."""
from __future__ import annotations

import stat
from pathlib import Path

from edge import paths
from edge.daemon.decision import ADJUSTED, door_threshold, uses_cohort
from edge.engines.manifest import read_manifest
from edge.gallery.audit import audit_path, verify_chain
from edge.gallery.check import audit_checks
from edge.gallery.crypto import default_key_path, load_key
from edge.gallery.store import Gallery
from edge.gallery.threshold import choose_threshold
from edge.selftest.runner import Result
from edge.verify.api import embedding_space

AFTER_OPEN = ("decrypt", "people", "model", "threshold")
RUN_AS_SERVICE = ("run the selftest as the service user: sudo -u edge-verify EDGE_VERIFY_HOME=/var/lib/edge-verify "
                  "edge-verify selftest")


class GalleryProbe:
    def __init__(self, settings):
        self.settings = settings
        self.path = settings.path("gallery.path") or paths.gallery_path()
        self.key_path = settings.path("gallery.key") or default_key_path()
        self.key: bytes | None = None
        self.gallery: Gallery | None = None
        self.people = self.templates = 0

    def check_key(self) -> Result:
        try:
            self.key = load_key(self.key_path)  # GalleryKeyMismatch says missing / open to others / damaged
        except PermissionError:
            return Result.failed(f"cannot read the key {self.key_path}: permission denied; {RUN_AS_SERVICE}")
        mode = stat.S_IMODE(self.key_path.stat().st_mode)
        return Result.passed(f"key {self.key_path}: {len(self.key)} bytes, mode {mode:04o}")

    def open(self) -> Result:
        if not self.path.exists():
            return Result.failed(f"no gallery at {self.path}: enroll people first (edge-verify enroll NAME "
                                 "--images ...), or set [gallery] path in the config")
        if self.key is None:
            return Result.skipped("cannot open the gallery without its key (see gallery.key)")
        try:
            self.gallery = Gallery.open(self.path, self.key)
        except PermissionError:
            return Result.failed(f"cannot read {self.path}: permission denied; {RUN_AS_SERVICE}")
        problems = self.gallery.integrity_check()
        if problems != ["ok"]:
            return Result.failed(f"{self.path}: SQLite integrity check: {'; '.join(problems[:3])}; move the file aside "
                                 "and restore a backup (edge-verify gallery import BACKUP_FILE)")
        return Result.passed(f"{self.path}: header, schema, key check and SQLite integrity check passed")

    def decrypt(self) -> Result:
        names, person_index, matrix = self.gallery.load_matrix()
        self.people, self.templates = len(names), len(matrix)
        return Result.passed(f"{self.templates} templates of {self.people} people decrypt and authenticate")

    def count_people(self) -> Result:
        if self.people == 0:
            return Result.failed("the gallery is empty: nobody can be let in; enroll people "
                                 "(edge-verify enroll NAME --images ...)")
        listed = [person["name"] for person in self.gallery.list_people()]
        shown = ", ".join(listed[:5]) + (f" and {len(listed) - 5} more" if len(listed) > 5 else "")
        return Result.passed(f"{self.people} people, {self.templates} templates: {shown}")

    def audit(self) -> Result:
        log = audit_path(self.path)
        if self.key is None:
            return Result.skipped("the audit chain is keyed with the gallery key, which could not be read "
                                  "(see gallery.key)")
        report = verify_chain(log, self.key)
        if not report.ok and self.gallery is None:
            return Result.skipped("a broken audit chain cannot be told from a wrong key while the gallery does not "
                                  "open (see gallery.open)")
        if not report.ok:
            where = f" at record {report.first_bad_seq}" if report.first_bad_seq else ""
            return Result.failed(f"audit log {log} is broken{where}: {report.reason}; keep the file for "
                                 "investigation: the next change records the break and keeps a copy; then "
                                 "acknowledge it (edge-verify gallery acknowledge-break)")
        head = self.gallery.checked_head() if self.gallery is not None else None
        failed = [check.detail for check in audit_checks(log, self.key, head) if not check.ok]
        if failed:
            return Result.failed("; ".join(failed))
        return Result.passed(f"audit log {log}: {report.records} records, keyed hash chain intact, no "
                             "unacknowledged break")

    def embedding_manifest(self) -> dict:
        return read_manifest(self.settings.embedding_engine())

    def check_model(self) -> Result:
        stored = self.gallery.model()
        if stored is None:
            return Result.skipped("no templates yet, so no model to compare")
        engine_model = embedding_space(self.embedding_manifest())
        if stored != engine_model:
            return Result.failed(f"templates were made with model {stored!r} but the embedding engine is "
                                 f"{engine_model!r}: their distances mean nothing; use an engine of the gallery's "
                                 "model, or re-enroll everyone")
        return Result.passed(f"templates and embedding engine are both {stored}")

    def check_threshold(self) -> Result:
        """The threshold the door decides with for this gallery: the one for a face's combined frames
        (edge.daemon.decision.door_threshold, what the daemon matches with), the single-photo one beside it."""
        decision = self.settings.daemon.decision
        manifest = self.embedding_manifest()
        override = decision["threshold"]
        single = choose_threshold(manifest, self.templates, decision["stranger_rate"])
        door = door_threshold(manifest, self.templates, None, decision["stranger_rate"], combined=True)
        frames = "a face's combined frames" + (ADJUSTED if uses_cohort(manifest) else "")
        if override is not None:
            return Result.passed(f"threshold {override:g} set in the config ([decision] threshold) replaces the "
                                 f"1:N rule's {door.threshold:.3f} for {frames} "
                                 f"({single.threshold:.3f} for one photo) for {self.templates} templates")
        if single.rule == "1:1 fallback":
            return Result.passed(f"threshold {single.threshold:.3f} (the 1:1 threshold: {single.note})")
        expected = f", expected stranger rate {door.expected_stranger_rate:.1e}" \
            if door.expected_stranger_rate is not None else ""
        note = f"; {door.note}" if door.note else ""
        return Result.passed(f"1:N threshold {door.threshold:.3f} for {frames}, {single.threshold:.3f} "
                             f"for one photo, for {self.templates} templates (1:1 {door.verification_threshold:g}, "
                             f"from {door.impostor_pairs} impostor pairs{expected}){note}")

    def close(self) -> None:
        if self.gallery is not None:
            self.gallery.close()


def run(context, step) -> None:
    probe = GalleryProbe(context.settings)
    try:
        step("key", probe.check_key)
        opened = step("open", probe.open)
        decrypted = step("decrypt", probe.decrypt) if opened.status == "PASS" else None
        if decrypted is not None and decrypted.status == "PASS":
            step("people", probe.count_people)
            step("model", probe.check_model)
            step("threshold", probe.check_threshold)
        else:
            for name in AFTER_OPEN[1 if decrypted else 0:]:
                step.skip(name, "the templates did not decrypt (see gallery.decrypt)" if decrypted
                          else "the gallery did not open (see gallery.open)")
        if Path(audit_path(probe.path)).exists() or probe.path.exists():
            step("audit", probe.audit)
        else:
            step.skip("audit", "no gallery, so no audit log")
    finally:
        probe.close()
