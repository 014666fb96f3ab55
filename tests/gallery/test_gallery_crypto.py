"""Templates at rest: unreadable without the key, bound to their row, wrong key caught at open."""
from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest

from edge.exc import GalleryCorrupt, GalleryKeyMismatch
from edge.gallery.crypto import create_key, load_key
from edge.gallery.store import Gallery

MODEL = "dlib_resnet_v1"


def test_key_file_is_created_private_and_never_overwritten(tmp_path):
    path = tmp_path / "keys" / "gallery.key"
    key = create_key(path)
    assert len(key) == 32 and path.read_bytes() == key
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(GalleryKeyMismatch, match="refusing to overwrite"):
        create_key(path)
    assert load_key(path) == key


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_key_open_to_group_or_others_is_refused(tmp_path, mode):
    path = tmp_path / "gallery.key"
    create_key(path)
    os.chmod(path, mode)
    with pytest.raises(GalleryKeyMismatch, match=f"mode {mode:04o}.*chmod 600"):
        load_key(path)


def test_damaged_or_missing_key_file(tmp_path):
    path = tmp_path / "gallery.key"
    with pytest.raises(GalleryKeyMismatch, match="no gallery key"):
        load_key(path)
    path.write_bytes(b"short")
    os.chmod(path, 0o600)
    with pytest.raises(GalleryKeyMismatch, match="5 bytes"):
        load_key(path)


def test_raw_file_does_not_hold_the_templates(gallery, make_vectors):
    vectors = make_vectors(7, 4)
    gallery.add_person_templates("Alice", vectors, MODEL, "test")
    gallery.close()
    raw = b"".join(path.read_bytes() for path in gallery.path.parent.glob("gallery.sqlite*"))
    for vector in vectors:
        data = vector.astype("<f4").tobytes()
        # not the whole vector, nor any 16-byte piece of it
        assert all(data[start:start + 16] not in raw for start in range(0, len(data) - 16, 4))
    with sqlite3.connect(gallery.path) as connection:
        blobs = [row[0] for row in connection.execute("SELECT ciphertext FROM templates")]
    assert len(blobs) == 4
    assert all(len(blob) == 128 * 4 + 16 for blob in blobs)  # float32 vector + GCM tag
    assert all(np.frombuffer(blob[:512], "<f4").tobytes() != vector.tobytes() for blob, vector in zip(blobs, vectors))


def test_wrong_key_is_refused_at_open(gallery, tmp_path, make_vectors):
    gallery.add_person_templates("Alice", make_vectors(1, 2), MODEL, "test")
    gallery.close()
    other = create_key(tmp_path / "other.key")
    with pytest.raises(GalleryKeyMismatch, match="key does not match this gallery"):
        Gallery.open(gallery.path, other)


def _swap(path, column_pairs):
    with sqlite3.connect(path) as connection:
        for first, second in column_pairs:
            a = connection.execute("SELECT nonce, ciphertext FROM templates WHERE id = ?", (first,)).fetchone()
            b = connection.execute("SELECT nonce, ciphertext FROM templates WHERE id = ?", (second,)).fetchone()
            connection.execute("UPDATE templates SET nonce = ?, ciphertext = ? WHERE id = ?", (*b, first))
            connection.execute("UPDATE templates SET nonce = ?, ciphertext = ? WHERE id = ?", (*a, second))


def test_ciphertext_swapped_between_rows_fails(gallery, key, make_vectors):
    gallery.add_person_templates("Alice", make_vectors(1, 2), MODEL, "test")
    gallery.close()
    _swap(gallery.path, [(1, 2)])  # even within one person
    with Gallery.open(gallery.path, key) as reopened:
        with pytest.raises(GalleryCorrupt, match="fails authentication.*restore the last backup"):
            reopened.load_matrix()


def test_template_moved_to_another_person_fails(gallery, key, make_vectors):
    gallery.add_person_templates("Alice", make_vectors(1, 1), MODEL, "test")
    gallery.add_person_templates("Mallory", make_vectors(2, 1), MODEL, "test")
    gallery.close()
    with sqlite3.connect(gallery.path) as connection:
        connection.execute("UPDATE templates SET person_id = (SELECT id FROM people WHERE name = 'Alice') "
                           "WHERE person_id = (SELECT id FROM people WHERE name = 'Mallory')")
    with Gallery.open(gallery.path, key) as reopened, pytest.raises(GalleryCorrupt, match="'Alice'"):
        reopened.load_matrix()


def test_names_swapped_in_the_people_table_fail(gallery, key, make_vectors):
    gallery.add_person_templates("Alice", make_vectors(1, 1), MODEL, "test")
    gallery.add_person_templates("Mallory", make_vectors(2, 1), MODEL, "test")
    gallery.close()
    with sqlite3.connect(gallery.path) as connection:
        connection.execute("UPDATE people SET name = CASE name WHEN 'Alice' THEN 'tmp' ELSE 'Alice' END")
        connection.execute("UPDATE people SET name = 'Mallory' WHERE name = 'tmp'")
    with Gallery.open(gallery.path, key) as reopened, pytest.raises(GalleryCorrupt, match="fails authentication"):
        reopened.load_matrix()


def test_template_copied_from_another_gallery_fails(tmp_path, key, make_vectors):
    first = Gallery.create(tmp_path / "a.sqlite", key, actor="test")
    second = Gallery.create(tmp_path / "b.sqlite", key, actor="test")  # same key, other gallery id
    for seed, gallery in enumerate((first, second)):
        gallery.add_person_templates("Alice", make_vectors(seed, 1), MODEL, "test")
        gallery.close()
    with sqlite3.connect(tmp_path / "a.sqlite") as source:
        row = source.execute("SELECT nonce, ciphertext FROM templates").fetchone()
    with sqlite3.connect(tmp_path / "b.sqlite") as target:
        target.execute("UPDATE templates SET nonce = ?, ciphertext = ?", row)
    with Gallery.open(tmp_path / "b.sqlite", key) as reopened, pytest.raises(GalleryCorrupt):
        reopened.load_matrix()
