"""What a backend stage produced, for the manifest."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class EngineBuild:
    """An engine file and the facts its manifest states."""

    path: Path
    precision: str
    requested_precision: str
    fallback: str | None = None
    quantization: dict | None = None
    extra: dict = field(default_factory=dict)
