"""Export bundles: a gallery's people and templates in one encrypted file.

Layout:
    line 1   b"edge-verify gallery bundle\\n"
    line 2   JSON header: format, bundle_id, created_at, key_check
    rest     12-byte nonce + AES-GCM ciphertext of the JSON payload

The whole payload is one AES-GCM message whose associated data is lines 1 and 2,
so nothing in the file can be changed, cut or swapped without the import failing.
The bundle is sealed with the exporting gallery's key: importing on another kiosk
needs that key (`gallery import FILE --bundle-key PATH`).

Payload: {"source_gallery", "people": [{"name", "created_at", "templates":
[{"model", "dim", "vector" (base64 little-endian float32), "quality", "created_at"}]}]}
"""
from __future__ import annotations

import base64
import json
import os
import time
import uuid
from pathlib import Path

import numpy as np

from edge.exc import GalleryError, GalleryKeyMismatch
from edge.gallery.crypto import InvalidTag, TemplateCipher, vector_from_bytes, vector_to_bytes
from edge.gallery.files import write_private

MAGIC = b"edge-verify gallery bundle\n"
FORMAT = 1


def is_bundle(path: str | os.PathLike) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


def write_bundle(path: str | os.PathLike, cipher: TemplateCipher, source_gallery: str, people: list[dict]) -> Path:
    """Seal ``people`` (as read by the store, with numpy vectors) into a new bundle file."""
    bundle_id = uuid.uuid4().hex
    header = {"format": FORMAT, "bundle_id": bundle_id, "created_at": _now(),
              "key_check": cipher.key_check(f"bundle:{bundle_id}")}
    header_line = json.dumps(header, sort_keys=True).encode() + b"\n"
    payload = {"source_gallery": source_gallery, "people": [_person_out(person) for person in people]}
    nonce, sealed = cipher.seal(json.dumps(payload).encode(), MAGIC + header_line)
    return write_private(path, MAGIC + header_line + nonce + sealed)


def read_bundle(path: str | os.PathLike, cipher: TemplateCipher) -> list[dict]:
    """People from a bundle, checked and decrypted; GalleryError when anything is off."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise GalleryError(f"cannot read bundle {path} ({error.strerror})") from error
    if not data.startswith(MAGIC):
        raise GalleryError(f"{path} is not an edge-verify gallery bundle or backup")
    header_end = data.find(b"\n", len(MAGIC))
    try:
        header = json.loads(data[len(MAGIC):header_end])
        bundle_id = header["bundle_id"]
    except (ValueError, KeyError, TypeError) as error:
        raise GalleryError(f"bundle {path} has a damaged header; nothing was imported") from error
    if header.get("format") != FORMAT:
        raise GalleryError(f"bundle {path} has format {header.get('format')}; this edge-verify reads {FORMAT}")
    if not cipher.matches(f"bundle:{bundle_id}", header.get("key_check", "")):
        raise GalleryKeyMismatch(f"bundle {path} was sealed with another key; pass the exporting kiosk's key "
                                 "with --bundle-key PATH")
    body = data[header_end + 1:]
    try:
        plaintext = cipher.open(body[:12], body[12:], data[:header_end + 1])
        payload = json.loads(plaintext)
        return [_person_in(person) for person in payload["people"]]
    except InvalidTag:
        raise GalleryError(f"bundle {path} is damaged or was altered (it fails authentication); nothing was imported: "
                           "use another backup or bundle") from None
    except (ValueError, KeyError, TypeError) as error:
        raise GalleryError(f"bundle {path} holds malformed data ({error}); nothing was imported: use another backup "
                           "or bundle") from error


def _person_out(person: dict) -> dict:
    return {"name": person["name"], "created_at": person["created_at"],
            "templates": [{"model": template["model"], "dim": int(template["vector"].shape[0]),
                           "vector": base64.b64encode(vector_to_bytes(template["vector"])).decode(),
                           "quality": template["quality"], "created_at": template["created_at"]}
                          for template in person["templates"]]}


def _person_in(person: dict) -> dict:
    templates = []
    for template in person["templates"]:
        vector = vector_from_bytes(base64.b64decode(template["vector"], validate=True), int(template["dim"]))
        if not np.all(np.isfinite(vector)):
            raise ValueError(f"a template of {person['name']} is not finite")
        templates.append({"model": str(template["model"]), "vector": vector,
                          "quality": template.get("quality"), "created_at": str(template["created_at"])})
    return {"name": str(person["name"]), "created_at": str(person["created_at"]), "templates": templates}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
