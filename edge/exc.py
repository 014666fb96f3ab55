"""One exception root for the whole product, with specific subclasses.

Every fault the daemon can meet is an EdgeVerifyError; the daemon's rule is that
any of them (or anything else) leaves the door locked. The CLI prints
``str(error)`` as one line and exits non-zero, so messages must say what went
wrong and what to do about it.
"""


class EdgeVerifyError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code = 1


class ConfigError(EdgeVerifyError):
    """A setting, flag or config file is wrong."""

    exit_code = 2


class ImageError(EdgeVerifyError):
    """An image file cannot be read or is not a usable picture."""


class NoFaceError(EdgeVerifyError):
    """No face was found where one was required."""


class ModelError(EdgeVerifyError):
    """Model weights are missing, corrupt or cannot be converted."""


class FetchError(ModelError):
    """Downloading model packages failed (offline, registry refused, bad archive)."""


class EngineError(ModelError):
    """An engine file cannot be loaded or run."""


class ManifestMismatch(EngineError):
    """An engine's sidecar manifest does not match this device or this runtime."""


class CalibrationError(EdgeVerifyError):
    """The INT8 calibration set is empty, unreadable or too small."""


class BuildError(EdgeVerifyError):
    """An engine build step failed (including a failed accuracy gate)."""


class PrecisionUnsupported(BuildError):
    """The requested precision is not supported on this device (never downgraded silently)."""


class SourceError(EdgeVerifyError):
    """A camera or video source cannot be opened or has failed."""


class SourceUnsupported(SourceError):
    """This kind of source can never work on this machine (e.g. csi:// with an OpenCV without
    GStreamer): waiting and trying again is pointless."""


class DoorError(EdgeVerifyError):
    """The door lock hardware cannot be driven."""


class GalleryError(EdgeVerifyError):
    """The gallery file is missing, corrupt, or does not match its key."""


class AuthError(EdgeVerifyError):
    """An admin operation was attempted without a valid token."""

    exit_code = 3


class GalleryCorrupt(GalleryError):
    """The gallery file is damaged, truncated or not a gallery; restore it from a backup."""


class GalleryKeyMismatch(GalleryError):
    """The key file is missing, unsafe, or not the key this gallery was encrypted with."""


class GateFailed(BuildError):
    """A built engine is measurably less accurate than its PyTorch reference.

    ``figures`` holds the accuracy gate's measurements, for the report."""

    def __init__(self, message: str, figures: dict | None = None):
        super().__init__(message)
        self.figures = figures or {}


class EnrollmentError(EdgeVerifyError):
    """An enrollment found too few good frames, or was refused; nothing was stored."""


class DuplicateFaceError(EnrollmentError):
    """The new face matches a person enrolled under another name (override with --force)."""

    exit_code = 4


class DatasetError(EdgeVerifyError):
    """Training data that cannot be used: missing folder, too few people or faces."""


class NoLivenessCheck(EngineError):
    """A liveness cue that was asked for cannot run: its model is missing."""


class NoAttributesEngine(NoLivenessCheck):
    """No attribute engine (the colour cue's `live` head) has been built; train one and run the build step."""


class NoLivenessModel(NoLivenessCheck):
    """No liveness model (texture, context and motion cues) has been trained; train one."""
