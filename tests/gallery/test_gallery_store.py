"""The gallery store on real SQLite files: counts, changes, model checks, export/import, backup."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from edge.exc import GalleryError, GalleryKeyMismatch
from edge.gallery import open_gallery
from edge.gallery.crypto import create_key
from edge.gallery.store import Gallery

MODEL = "dlib_resnet_v1"


def test_add_list_remove_counts(gallery, make_vectors):
    assert gallery.add_person_templates("Alice", make_vectors(1, 5), MODEL, "test") == 5
    assert gallery.add_person_templates("Bob", make_vectors(2, 3), MODEL, "test") == 3
    people = {person["name"]: person["templates"] for person in gallery.list_people()}
    assert people == {"Alice": 5, "Bob": 3}
    assert gallery.remove_person("Alice", "test") == 5
    assert [person["name"] for person in gallery.list_people()] == ["Bob"]
    with sqlite3.connect(gallery.path) as raw:
        assert raw.execute("SELECT count(*) FROM templates").fetchone()[0] == 3


def test_load_matrix_returns_the_vectors_grouped_by_person(gallery, make_vectors):
    alice, bob = make_vectors(1, 4), make_vectors(2, 2)
    gallery.add_person_templates("Bob", bob, MODEL, "test")
    gallery.add_person_templates("Alice", alice, MODEL, "test")
    names, index, matrix = gallery.load_matrix(MODEL)
    assert names == ["Alice", "Bob"]
    assert index.tolist() == [0, 0, 0, 0, 1, 1]
    assert matrix.dtype == np.float32 and matrix.shape == (6, 128)
    np.testing.assert_array_equal(matrix[:4], alice)
    np.testing.assert_array_equal(matrix[4:], bob)


def test_dimension_is_stored_not_assumed(gallery, make_vectors):
    gallery.add_person_templates("Alice", make_vectors(1, 2, dim=512), "arcface_r100", "test")
    assert gallery.load_matrix()[2].shape == (2, 512)
    with pytest.raises(GalleryError, match="512-d"):
        gallery.add_person_templates("Bob", make_vectors(2, 2, dim=128), "arcface_r100", "test")


def test_templates_of_another_model_are_refused(gallery, make_vectors):
    gallery.add_person_templates("Alice", make_vectors(1, 2), MODEL, "test")
    with pytest.raises(GalleryError, match="different models cannot be compared"):
        gallery.add_person_templates("Bob", make_vectors(2, 2), "other_model", "test")
    with pytest.raises(GalleryError, match="different models cannot be compared"):
        gallery.load_matrix("other_model")
    gallery.remove_person("Alice", "test")
    # an emptied gallery accepts a new model
    gallery.add_person_templates("Bob", make_vectors(2, 2), "other_model", "test")
    assert gallery.model() == "other_model"


def test_empty_gallery_loads_as_empty_matrix(gallery):
    names, index, matrix = gallery.load_matrix(MODEL)
    assert names == [] and index.shape == (0,) and matrix.shape[0] == 0


def test_an_enrolled_name_needs_append(gallery, make_vectors):
    gallery.add_person_templates("Alice", make_vectors(1, 2), MODEL, "test")
    with pytest.raises(GalleryError, match="already enrolled"):
        gallery.add_person_templates("Alice", make_vectors(2, 2), MODEL, "test")
    assert gallery.add_person_templates("Alice", make_vectors(2, 3), MODEL, "test", append=True) == 3
    assert gallery.list_people()[0]["templates"] == 5


@pytest.mark.parametrize("vectors, message", [
    (np.full((2, 128), np.nan), "NaN"),
    (np.zeros((0, 128)), "at least one row"),
    (np.zeros((2, 3, 4)), "shape"),
])
def test_bad_vectors_store_nothing(gallery, vectors, message):
    with pytest.raises(GalleryError, match=message):
        gallery.add_person_templates("Alice", vectors, MODEL, "test")
    assert gallery.list_people() == [] and gallery.version() == 0


@pytest.mark.parametrize("name", ["", " Alice", "Al\nice", "x" * 201])
def test_bad_names_are_refused(gallery, make_vectors, name):
    with pytest.raises(GalleryError):
        gallery.add_person_templates(name, make_vectors(1, 1), MODEL, "test")


def test_version_changes_with_every_change_and_is_seen_by_another_connection(gallery, gallery_path, key, make_vectors):
    with Gallery.open(gallery_path, key) as reader:  # as the daemon holds it
        before = reader.version()
        gallery.add_person_templates("Alice", make_vectors(1, 2), MODEL, "test")
        after_add = reader.version()
        gallery.rename("Alice", "Alicia", "test")
        after_rename = reader.version()
        assert before < after_add < after_rename
        assert reader.load_matrix()[0] == ["Alicia"]


def test_rename_keeps_templates_and_refuses_taken_names(gallery, make_vectors):
    vectors = make_vectors(1, 3)
    gallery.add_person_templates("Alice", vectors, MODEL, "test")
    gallery.add_person_templates("Bob", make_vectors(2, 1), MODEL, "test")
    with pytest.raises(GalleryError, match="already enrolled"):
        gallery.rename("Alice", "Bob", "test")
    gallery.rename("Alice", "Alicia", "test")
    names, index, matrix = gallery.load_matrix()
    np.testing.assert_array_equal(matrix[index == names.index("Alicia")], vectors)
    with pytest.raises(GalleryError, match="nobody named 'Alice'"):
        gallery.remove_person("Alice", "test")


def test_show_lists_template_metadata_without_vectors(gallery, make_vectors):
    gallery.add_person_templates("Alice", make_vectors(1, 2), MODEL, "test",
                                 quality=[{"sharpness": 120.5}, {"sharpness": 98.0}])
    shown = gallery.show("Alice")
    assert [template["quality"]["sharpness"] for template in shown["templates"]] == [120.5, 98.0]
    assert all(set(template) == {"id", "model", "dim", "created_at", "quality"} for template in shown["templates"])


def test_export_import_round_trip_and_conflicts(gallery, tmp_path, key, make_vectors):
    alice = make_vectors(1, 3)
    gallery.add_person_templates("Alice", alice, MODEL, "test", quality={"source": "fixture"})
    gallery.add_person_templates("Bob", make_vectors(2, 2), MODEL, "test")
    bundle = tmp_path / "people.bundle"
    assert gallery.export(bundle, "test") == {"people": 2, "templates": 5}
    assert alice.tobytes() not in bundle.read_bytes()
    with pytest.raises(GalleryError, match="already exists"):
        gallery.export(bundle, "test")

    with pytest.raises(GalleryError, match="already enrolled .*Alice, Bob; nothing was imported"):
        gallery.import_(bundle, "test")

    other_key = create_key(tmp_path / "other.key")
    with Gallery.create(tmp_path / "other.sqlite", other_key, actor="test") as other:
        other.add_person_templates("Carol", make_vectors(3, 1), MODEL, "test")
        with pytest.raises(GalleryKeyMismatch, match="--bundle-key"):
            other.import_(bundle, "test")
        assert other.import_(bundle, "test", key=key) == {"people": 2, "templates": 5}
        names, index, matrix = other.load_matrix()
        assert names == ["Alice", "Bob", "Carol"]
        np.testing.assert_array_equal(matrix[index == 0], alice)
        assert other.show("Alice")["templates"][0]["quality"] == {"source": "fixture"}


def test_altered_bundle_is_refused_whole(gallery, tmp_path, key, make_vectors):
    gallery.add_person_templates("Alice", make_vectors(1, 3), MODEL, "test")
    bundle = tmp_path / "people.bundle"
    gallery.export(bundle, "test")
    data = bytearray(bundle.read_bytes())
    data[-40] ^= 1
    bundle.write_bytes(bytes(data))
    with Gallery.create(tmp_path / "new.sqlite", key, actor="test") as fresh:
        with pytest.raises(GalleryError, match="damaged or was altered"):
            fresh.import_(bundle, "test")
        assert fresh.list_people() == []


def test_backup_opens_with_the_same_key_and_restores(gallery, tmp_path, key, make_vectors):
    vectors = make_vectors(1, 4)
    gallery.add_person_templates("Alice", vectors, MODEL, "test")
    target = gallery.backup(tmp_path / "backups" / "g.sqlite", "test")
    assert target.stat().st_mode & 0o077 == 0
    gallery.add_person_templates("Bob", make_vectors(2, 1), MODEL, "test")  # after the backup
    with Gallery.open(target, key) as copy:
        assert [person["name"] for person in copy.list_people()] == ["Alice"]
    with open_gallery(tmp_path / "restored.sqlite", tmp_path / "gallery.key", create=True) as restored:
        assert restored.import_(target, "test") == {"people": 1, "templates": 4}
        np.testing.assert_array_equal(restored.load_matrix()[2], vectors)


def test_open_gallery_never_makes_a_new_key_for_an_existing_gallery(gallery, tmp_path):
    with pytest.raises(GalleryKeyMismatch, match="no gallery key"):
        open_gallery(gallery.path, tmp_path / "missing.key", create=True)
    assert not (tmp_path / "missing.key").exists()


def test_create_refuses_an_existing_file(gallery, key):
    with pytest.raises(GalleryError, match="already exists"):
        Gallery.create(gallery.path, key)


def test_gallery_files_are_private(gallery, make_vectors):
    gallery.add_person_templates("Alice", make_vectors(1, 1), MODEL, "test")
    for path in gallery.path.parent.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path
