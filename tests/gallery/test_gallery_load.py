"""Gallery.load_matrix decrypts row by row but does the rest once per matrix, and loads exactly
what the loader it replaced loaded, with the same refusals.

``row_by_row`` is the previous load_matrix body after the SQL query, kept here: for each row the
JSON associated data, the decryption, the length and finiteness checks, then np.stack.
"""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from edge.exc import GalleryCorrupt
from edge.gallery.crypto import TemplateCipher, template_context, template_contexts, vector_to_bytes
from edge.gallery.store import Gallery

MODEL = "dlib_resnet_v1"
ROWS = ("SELECT t.id, p.id, p.name, t.model, t.dim, t.nonce, t.ciphertext FROM templates t "
        "JOIN people p ON p.id = t.person_id ORDER BY p.name, t.id")


def row_by_row(gallery: Gallery):
    rows = gallery._connection.execute(ROWS).fetchall()
    names, index, vectors = [], [], []
    for row in rows:
        if not names or names[-1] != row[2]:
            names.append(row[2])
        index.append(len(names) - 1)
        vectors.append(gallery._open_template(*row))
    return names, np.asarray(index, dtype=np.intp), np.stack(vectors)


ODD_NAMES = ['Zoë "Z" O\'Brien', "back\\slash", "李小龍", "Ünïcødé — dash", "emoji 🙂", "a/b", "x" * 100]


def test_the_same_matrix_as_the_row_by_row_loader(gallery, make_vectors):
    for seed, name in enumerate(["Bob", *ODD_NAMES, "alice", "Alice"]):
        gallery.add_person_templates(name, make_vectors(seed, 1 + seed % 4), MODEL, "test")
    gallery.add_person_templates("Bob", make_vectors(50, 2), MODEL, "test", append=True)  # ids out of name order
    gallery.remove_person("alice", "test")  # a gap in the ids
    gallery.rename("Alice", "Alicia", "test")  # sealed again under the new name
    names, index, matrix = gallery.load_matrix(MODEL)
    old_names, old_index, old_matrix = row_by_row(gallery)
    assert names == old_names and len(names) == len(ODD_NAMES) + 2
    np.testing.assert_array_equal(index, old_index)
    assert matrix.dtype == old_matrix.dtype == np.float32 and matrix.flags.c_contiguous and matrix.flags.writeable
    assert matrix.tobytes() == old_matrix.tobytes()


def test_the_contexts_are_byte_for_byte_those_of_template_context():
    rows = [(template_id, person_id, name, model, dim)
            for template_id, (person_id, name) in enumerate([(1, "Ann"), (1, "Ann"), (7, ODD_NAMES[0]),
                                                             (7, "renamed"), (12, ODD_NAMES[2]), (3, "Ann")], 1)
            for model, dim in (("dlib_resnet_v1", 128), ("arcface \"r100\"", 512))]
    rows += [(2**40, 5, "big id", "m", 128), (41, 5, "big id", "m", 128.0), (42, 5.0, "big id", "m", 128.0),
             (43, True, "big id", "m", True), (True, 1, "big id", "m", "128")]  # what a damaged row may hold
    # what template_context wrote when every gallery so far was sealed
    expected = [json.dumps(["template", "gallery-id", person_id, name, template_id, model, dim],
                           separators=(",", ":"), ensure_ascii=False).encode()
                for template_id, person_id, name, model, dim in rows]
    assert template_contexts("gallery-id", rows) == expected
    assert [template_context("gallery-id", person_id, name, template_id, model, dim)
            for template_id, person_id, name, model, dim in rows] == expected


def _tamper(gallery: Gallery, key: bytes, vector_bytes: bytes, dim: int = 128) -> int:
    """Seal ``vector_bytes`` correctly into the first template row (authentic, but not a good template)."""
    with sqlite3.connect(gallery.path) as connection:
        template_id, person_id, name = connection.execute(
            "SELECT t.id, p.id, p.name FROM templates t JOIN people p ON p.id = t.person_id ORDER BY t.id").fetchone()
        context = template_context(gallery.id, person_id, name, template_id, MODEL, dim)
        nonce, sealed = TemplateCipher(key).seal(vector_bytes, context)
        connection.execute("UPDATE templates SET nonce = ?, ciphertext = ?, dim = ? WHERE id = ?",
                           (nonce, sealed, dim, template_id))
    return template_id


@pytest.fixture
def filled(gallery, make_vectors):
    gallery.add_person_templates("Alice", make_vectors(1, 3), MODEL, "test")
    gallery.add_person_templates("Bob", make_vectors(2, 2), MODEL, "test")
    return gallery


def test_a_not_finite_template_fails_the_whole_load(filled, key, make_vectors):
    vector = make_vectors(3, 1)[0]
    vector[5] = np.inf
    template_id = _tamper(filled, key, vector_to_bytes(vector))
    with pytest.raises(GalleryCorrupt, match=rf"template \({template_id}, of 'Alice'\) that is not finite"):
        filled.load_matrix(MODEL)
    with pytest.raises(GalleryCorrupt, match="not finite"):
        row_by_row(filled)  # the old loader refused it too


def test_a_template_of_the_wrong_length_fails_authentication(filled, key, make_vectors):
    _tamper(filled, key, vector_to_bytes(make_vectors(3, 1)[0][:127]))
    with pytest.raises(GalleryCorrupt, match="fails authentication"):
        filled.load_matrix(MODEL)
    with pytest.raises(GalleryCorrupt, match="fails authentication"):
        row_by_row(filled)


def test_templates_of_different_dimensions_are_refused(filled, key, make_vectors):
    """Authentic rows of another dimension cannot be stacked: refused as corrupt (the old loader let
    numpy's ValueError escape)."""
    _tamper(filled, key, vector_to_bytes(make_vectors(3, 1, dim=64)[0]), dim=64)
    with pytest.raises(GalleryCorrupt, match=r"different dimensions \(\[64, 128\]\)"):
        filled.load_matrix(MODEL)
    with pytest.raises(ValueError):
        row_by_row(filled)


def test_an_altered_ciphertext_fails_the_whole_load(filled):
    with sqlite3.connect(filled.path) as connection:
        nonce, sealed = connection.execute("SELECT nonce, ciphertext FROM templates WHERE id = 4").fetchone()
        connection.execute("UPDATE templates SET ciphertext = ? WHERE id = 4", (sealed[:-1] + bytes([sealed[-1] ^ 1]),))
    with pytest.raises(GalleryCorrupt, match=r"template \(4, of 'Bob'\) that fails authentication"):
        filled.load_matrix(MODEL)
