"""Templates encrypted at rest, and the gallery key file.

A stolen gallery file must not leak biometric templates, so every template is
sealed with AES-GCM under a key that lives in a separate file, readable only by
the service user. Sub-keys are derived from that file with HKDF, one to seal
templates, one to make the key check value and one to key the audit log's chain
(audit_key), so that no use can be turned against another.

Each template gets a fresh random 96-bit nonce, and its associated data names the
gallery, the person (id and name), the template row and the embedding model. The
associated data is not stored: it is rebuilt from the row when decrypting, so a
ciphertext copied into another row, another person or another gallery fails to
authenticate instead of quietly making Bob look like Alice.
"""
from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import stat
from json.encoder import encode_basestring
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edge import paths
from edge.disk import is_no_space, space_advice
from edge.exc import GalleryError, GalleryKeyMismatch
from edge.gallery.files import adopt_owner, fsync_folder, no_permission

KEY_BYTES = 32
NONCE_BYTES = 12
_LABEL = b"edge-verify gallery v1 "
# What json.dumps(value, separators=(",", ":"), ensure_ascii=False) uses, made once: json.dumps
# builds a new encoder on every call with non-default options (half the time of a gallery load).
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

__all__ = [
    "InvalidTag", "KEY_BYTES", "TemplateCipher", "audit_key", "create_key", "default_key_path", "load_key",
    "template_context", "template_contexts", "vector_from_bytes", "vector_to_bytes",
]


def default_key_path() -> Path:
    """The installed config's [gallery] key, else $EDGE_VERIFY_HOME/gallery.key."""
    return paths.gallery_key_path()


def create_key(path: str | os.PathLike) -> bytes:
    """Write 32 random bytes to a new file of mode 0600 and return them.

    Never overwrites: a new key makes every template of the old gallery unreadable.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(KEY_BYTES)
    try:
        # O_EXCL with mode 0600: the key is never, even briefly, readable by others.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise GalleryKeyMismatch(
            f"key file {path} already exists; refusing to overwrite it (a new key makes the gallery unreadable)"
        ) from None
    except PermissionError:
        raise no_permission(path.parent, "create the gallery key in") from None
    try:
        adopt_owner(descriptor, path.parent)
        if os.write(descriptor, key) != len(key):
            raise OSError(errno.ENOSPC, "short write")
        os.fsync(descriptor)
    except OSError as error:
        os.close(descriptor)
        path.unlink(missing_ok=True)  # a short key file would lock the gallery out for good
        if is_no_space(error):
            raise GalleryError(f"cannot write the gallery key {path}: {space_advice(path)}") from None
        raise
    else:
        os.close(descriptor)
    fsync_folder(path.parent)
    return key


def load_key(path: str | os.PathLike) -> bytes:
    """Read a key file, refusing one that group or others can read or write."""
    path = Path(path)
    try:
        info = path.stat()
    except PermissionError:
        raise no_permission(path, "read the gallery key") from None
    except FileNotFoundError:
        raise GalleryKeyMismatch(
            f"no gallery key at {path}; it is created with the gallery at the first enrollment "
            "(pass --key PATH if it lives elsewhere)"
        ) from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise GalleryKeyMismatch(
            f"key file {path} is open to group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"run `chmod 600 {path}` and check who could have copied it"
        )
    try:
        key = path.read_bytes()
    except PermissionError:
        raise no_permission(path, "read the gallery key") from None
    if len(key) != KEY_BYTES:
        raise GalleryKeyMismatch(f"key file {path} holds {len(key)} bytes, a gallery key is {KEY_BYTES}; it is damaged")
    return key


def template_context(gallery_id: str, person_id: int, person_name: str, template_id: int, model: str, dim: int) -> bytes:
    """Associated data that ties a ciphertext to exactly one row."""
    return _json(["template", gallery_id, person_id, person_name, template_id, model, dim]).encode()


def template_contexts(gallery_id: str, rows) -> list[bytes]:
    """:func:`template_context` for each (template_id, person_id, person_name, model, dim) row: the
    same bytes, with each person's part and each model's part encoded once per run of rows that
    share it (loading a gallery of 50k templates spent most of its time encoding them row by row)."""
    person = head = model_dim = tail = None
    opening = _json(["template", gallery_id])[:-1] + ","
    contexts = []
    for template_id, person_id, person_name, model, dim in rows:
        # the types too: 128 == 128.0 == True, but their JSON differs
        if (person_id, person_name, type(person_id), type(person_name)) != person:
            person = person_id, person_name, type(person_id), type(person_name)
            # '["template","<gallery>",<person id>,"<name>",'
            if type(person_id) is int and type(person_name) is str:  # what the JSON encoder writes for them
                head = f"{opening}{person_id},{encode_basestring(person_name)},"
            else:
                head = _json(["template", gallery_id, person_id, person_name])[:-1] + ","
        if (model, dim, type(model), type(dim)) != model_dim:  # ',"<model>",<dim>]'
            model_dim = model, dim, type(model), type(dim)
            tail = "," + _json([model, dim])[1:]
        # a row id is a plain int, whose JSON is its decimal form
        contexts.append(f"{head}{template_id if type(template_id) is int else _json(template_id)}{tail}".encode())
    return contexts


def _json(value) -> str:
    return _COMPACT_JSON.encode(value)


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(data: bytes, dim: int) -> np.ndarray:
    if len(data) != 4 * dim:
        raise ValueError(f"template holds {len(data)} bytes, expected {4 * dim}")
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


class TemplateCipher:
    """Seals and opens templates and bundles with one gallery key."""

    def __init__(self, key: bytes):
        if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
            raise GalleryKeyMismatch(f"a gallery key is {KEY_BYTES} bytes (load it with load_key)")
        self._aead = AESGCM(_derive(bytes(key), b"templates"))
        self._check_key = _derive(bytes(key), b"key check")

    def key_check(self, label: str) -> str:
        """A value stored beside the data, so a wrong key is caught before any decryption."""
        return hmac.new(self._check_key, label.encode(), hashlib.sha256).hexdigest()

    def matches(self, label: str, stored_check: str) -> bool:
        return hmac.compare_digest(self.key_check(label), str(stored_check))

    def seal(self, plaintext: bytes, context: bytes) -> tuple[bytes, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        return nonce, self._aead.encrypt(nonce, plaintext, context)

    def open(self, nonce: bytes, ciphertext: bytes, context: bytes) -> bytes:
        """Raises cryptography's InvalidTag when the data or its context was altered."""
        return self._aead.decrypt(bytes(nonce), bytes(ciphertext), context)


def audit_key(key: bytes) -> bytes:
    """The key of the audit log's HMAC chain, derived from the gallery key."""
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
        raise GalleryKeyMismatch(f"a gallery key is {KEY_BYTES} bytes (load it with load_key)")
    return _derive(bytes(key), b"audit log")


def _derive(key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL + purpose).derive(key)

