"""A damaged gallery file is refused whole, with the documented recovery."""
from __future__ import annotations

import os

import pytest

from edge.exc import GalleryCorrupt, GalleryError
from edge.gallery.store import Gallery

MODEL = "dlib_resnet_v1"
HINT = "restore the last backup with `edge-verify gallery import BACKUP"


@pytest.fixture
def filled(gallery, make_vectors):
    for number in range(20):
        gallery.add_person_templates(f"person {number}", make_vectors(number, 5), MODEL, "test")
    gallery.close()
    return gallery.path


@pytest.mark.parametrize("fraction", [0.0, 0.02, 0.5, 0.9])
def test_truncated_file(filled, key, fraction):
    size = filled.stat().st_size
    os.truncate(filled, int(size * fraction))
    with pytest.raises(GalleryCorrupt) as caught:
        Gallery.open(filled, key)
    assert str(filled) in str(caught.value) and HINT in str(caught.value)


def test_cut_by_one_page(filled, key):
    os.truncate(filled, filled.stat().st_size - 4096)
    with pytest.raises(GalleryCorrupt, match="restore the last backup"):
        Gallery.open(filled, key)


def test_garbage_file(gallery_path, key):
    gallery_path.write_bytes(os.urandom(64 * 1024))
    with pytest.raises(GalleryCorrupt, match="not an SQLite file.*restore the last backup"):
        Gallery.open(gallery_path, key)


def test_overwritten_pages_in_the_middle(filled, key):
    size = filled.stat().st_size
    with open(filled, "r+b") as handle:
        handle.seek(size // 2)
        handle.write(os.urandom(8192))
    with pytest.raises(GalleryCorrupt, match="restore the last backup"):
        with Gallery.open(filled, key) as gallery:
            gallery.load_matrix()


def test_another_sqlite_database(gallery_path, key):
    import sqlite3

    with sqlite3.connect(gallery_path) as connection:
        connection.execute("CREATE TABLE notes (text)")
    with pytest.raises(GalleryCorrupt, match="not an edge-verify gallery"):
        Gallery.open(gallery_path, key)


def test_missing_file_is_not_called_corrupt(gallery_path, key):
    with pytest.raises(GalleryError, match="no gallery at") as caught:
        Gallery.open(gallery_path, key)
    assert not isinstance(caught.value, GalleryCorrupt)
    assert not gallery_path.exists()  # opening never creates a file


def test_a_record_length_damaged_into_too_big_is_called_corrupt(tmp_path):
    # Random bytes over a page can turn a record's length into gigabytes: SQLite then answers
    # "string or blob too big" (SQLITE_TOOBIG) instead of "malformed". A gallery never stores
    # anything near that size, so on reading it is damage, with the restore advice.
    import sqlite3

    from edge.gallery.schema import database_error

    error = sqlite3.DataError("string or blob too big")
    error.sqlite_errorcode = 18
    refusal = database_error(tmp_path / "gallery.sqlite", error)
    assert isinstance(refusal, GalleryCorrupt)
    assert "restore the last backup" in str(refusal)
