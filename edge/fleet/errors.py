"""Errors of the fleet (hub and kiosk agent), rooted in edge.exc like every other."""
from __future__ import annotations

from edge.exc import AuthError, EdgeVerifyError, GalleryError


class FleetError(EdgeVerifyError):
    """The hub, the broker or a kiosk's sync cannot do what was asked."""


class HubUnavailable(FleetError):
    """PostgreSQL or the broker cannot be reached."""


class EnrollConflict(GalleryError):
    """The name is already enrolled at the site (or was, a moment ago, by another door): refused, never overwritten."""

    exit_code = 5


class DeviceRevoked(FleetError):
    """The device has been revoked; it gets no changes and its events are refused."""


class AdminLocked(AuthError):
    """Too many wrong passwords: the admin account waits (or is locked until another admin unlocks it)."""
