"""The site key: templates encrypted end to end, from the enrolling station to each kiosk.

Every template that leaves a kiosk or the hub's enrollment is sealed with AES-GCM
under the site's key (32 random bytes, kept in a file on the hub, never in
PostgreSQL). The broker and the database only ever hold ciphertext. Each kiosk
receives the site key wrapped for it alone: X25519 with a fresh ephemeral key
against the device's wrap key, HKDF-SHA256, AES-GCM, the site and device names as
associated data. The hub keeps only the device's public wrap key, so it can wrap
a key again later (a rotation) without holding any device secret.

A template's associated data names the site, the person's id and name, the
template's id, the model and the dimension: a ciphertext moved to another person
or another site does not open.
"""
from __future__ import annotations

import base64
import json
import os

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edge.exc import EdgeVerifyError

KEY_BYTES = 32
NONCE_BYTES = 12
_LABEL = b"edge-verify site v1 "


class SiteKeyError(EdgeVerifyError):
    """A site key or a sealed template does not open (wrong key, altered data)."""


def new_site_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL + purpose).derive(secret)


# ---- templates ---------------------------------------------------------------------------------

def template_context(site: str, person: str, name: str, template: str, model: str, dim: int) -> bytes:
    return json.dumps(["site-template", site, person, name, template, model, int(dim)],
                      separators=(",", ":"), ensure_ascii=False).encode()


class SiteCipher:
    """Seals and opens templates with one site key."""

    def __init__(self, site: str, key: bytes):
        if len(key) != KEY_BYTES:
            raise SiteKeyError(f"a site key is {KEY_BYTES} bytes, got {len(key)}")
        self.site = site
        self._aead = AESGCM(_derive(bytes(key), b"templates"))
        self._check = _derive(bytes(key), b"key check")

    def key_check(self) -> str:
        """Stored beside the data (PostgreSQL, bundles) so a wrong key is caught before decrypting."""
        return _derive(self._check, self.site.encode()).hex()

    def seal(self, vector, person: str, name: str, template: str, model: str) -> dict:
        vector = np.ascontiguousarray(vector, dtype="<f4").reshape(-1)
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, vector.tobytes(),
                                    template_context(self.site, person, name, template, model, vector.size))
        return {"id": template, "nonce": b64(nonce), "ct": b64(sealed)}

    def open(self, item: dict, person: str, name: str, model: str, dim: int) -> np.ndarray:
        context = template_context(self.site, person, name, item["id"], model, dim)
        try:
            data = self._aead.decrypt(unb64(item["nonce"]), unb64(item["ct"]), context)
        except (InvalidTag, ValueError, KeyError):
            raise SiteKeyError(f"template {item.get('id')!r} of {name!r} does not open with the site key of "
                               f"{self.site!r} (altered, moved, or another site's key)") from None
        if len(data) != 4 * int(dim):
            raise SiteKeyError(f"template {item['id']!r} holds {len(data)} bytes, expected {4 * int(dim)}")
        vector = np.frombuffer(data, dtype="<f4").astype(np.float32)
        if not np.all(np.isfinite(vector)):
            raise SiteKeyError(f"template {item['id']!r} of {name!r} is not finite")
        return vector


# ---- wrapping the site key for one device ------------------------------------------------------

def new_wrap_key() -> tuple[bytes, bytes]:
    """(private, public) raw X25519 keys for a device."""
    private = X25519PrivateKey.generate()
    return (private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                  serialization.NoEncryption()),
            private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def _wrap_context(site: str, device: str) -> bytes:
    return json.dumps(["site-key", site, device], separators=(",", ":")).encode()


def wrap(site_key: bytes, device_public: bytes, site: str, device: str) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(device_public))
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(_derive(shared, b"wrap")).encrypt(nonce, site_key, _wrap_context(site, device))
    return ephemeral.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) + nonce + sealed


def unwrap(wrapped: bytes, device_private: bytes, site: str, device: str) -> bytes:
    if len(wrapped) < 32 + NONCE_BYTES + 16:
        raise SiteKeyError("the wrapped site key is truncated")
    ephemeral, nonce, sealed = wrapped[:32], wrapped[32:32 + NONCE_BYTES], wrapped[32 + NONCE_BYTES:]
    shared = X25519PrivateKey.from_private_bytes(device_private).exchange(X25519PublicKey.from_public_bytes(ephemeral))
    try:
        return AESGCM(_derive(shared, b"wrap")).decrypt(nonce, sealed, _wrap_context(site, device))
    except InvalidTag:
        raise SiteKeyError(f"the site key in this bundle is not for device {device!r} of site {site!r}") from None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)
