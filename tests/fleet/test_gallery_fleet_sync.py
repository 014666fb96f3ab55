"""The gallery's side of sync: changes continue exactly where the gallery stands, in one transaction."""
from __future__ import annotations

import pytest

from fleetkit import MODEL, unit_vectors

from edge.exc import ConfigError, GalleryError
from edge.gallery import open_gallery


def add(seq, person, name, seed):
    return {"seq": seq, "kind": "add", "person": person, "name": name, "model": MODEL,
            "vectors": unit_vectors(2, seed=seed)}


@pytest.fixture
def gallery(tmp_path):
    with open_gallery(tmp_path / "g.sqlite", tmp_path / "g.key", create=True, actor="test") as opened:
        yield opened


def test_changes_apply_once_in_order_with_their_number(gallery):
    version = gallery.version()
    assert gallery.apply_fleet_changes("main", 0, [add(1, "p1", "Ada", 1), add(2, "p2", "Grace", 2)], "t") == 2
    assert gallery.fleet_position() == ("main", 2) and gallery.version() == version + 1  # one reload
    with pytest.raises(GalleryError, match="at fleet change 2, not 1"):
        gallery.apply_fleet_changes("main", 1, [add(2, "p2", "Grace", 2)], "t")  # twice: refused
    with pytest.raises(GalleryError, match="without gaps"):
        gallery.apply_fleet_changes("main", 2, [{"seq": 4, "kind": "remove", "person": "p1"}], "t")
    with pytest.raises(GalleryError, match="follows site 'main'"):
        gallery.apply_fleet_changes("other", 2, [{"seq": 3, "kind": "skip"}], "t")
    assert [person["name"] for person in gallery.list_people()] == ["Ada", "Grace"]
    gallery.apply_fleet_changes("main", 2, [{"seq": 3, "kind": "remove", "person": "p1"}, {"seq": 4, "kind": "skip"},
                                            {"seq": 5, "kind": "remove", "person": "never-here"}], "t")
    assert gallery.fleet_position() == ("main", 5)
    assert [person["name"] for person in gallery.list_people()] == ["Grace"]


def test_a_failing_change_leaves_the_gallery_and_its_number_as_they_were(gallery):
    gallery.apply_fleet_changes("main", 0, [add(1, "p1", "Ada", 1)], "t")
    bad = {"seq": 3, "kind": "add", "person": "p3", "name": "Bad", "model": "other-model",
           "vectors": unit_vectors(2, seed=3)}
    with pytest.raises(GalleryError):
        gallery.apply_fleet_changes("main", 1, [add(2, "p2", "Grace", 2), bad], "t")
    assert gallery.fleet_position() == ("main", 1)
    assert [person["name"] for person in gallery.list_people()] == ["Ada"]


def test_a_snapshot_replaces_everyone_including_local_enrollments(gallery):
    gallery.add_person_templates("Local", unit_vectors(2, seed=7), MODEL, actor="t")
    gallery.apply_fleet_snapshot("main", 40, [{"person": "p9", "name": "Ada", "model": MODEL,
                                               "vectors": unit_vectors(3, seed=9)}], "t")
    assert gallery.fleet_position() == ("main", 40)
    assert gallery.list_people()[0]["name"] == "Ada" and len(gallery.list_people()) == 1
    names, _, matrix = gallery.load_matrix(MODEL)
    assert names == ["Ada"] and matrix.shape == (3, 128)


def test_metrics_listen_only_on_loopback():
    from edge.fleet.metrics import parse_address

    assert parse_address("127.0.0.1:9102") == ("127.0.0.1", 9102)
    assert parse_address("[::1]:9102") == ("::1", 9102)
    for address in ("0.0.0.0:9102", "10.1.2.3:9102", "example:1"):
        with pytest.raises(ConfigError):
            parse_address(address)


def test_site_key_wrapped_for_one_device_opens_only_there():
    from edge.fleet.sitekey import SiteCipher, SiteKeyError, new_site_key, new_wrap_key, unwrap, wrap

    key = new_site_key()
    private, public = new_wrap_key()
    other_private, _ = new_wrap_key()
    wrapped = wrap(key, public, "main", "door-1")
    assert unwrap(wrapped, private, "main", "door-1") == key
    for attempt in ((other_private, "main", "door-1"), (private, "main", "door-2"), (private, "other", "door-1")):
        with pytest.raises(SiteKeyError):
            unwrap(wrapped, *attempt)
    cipher = SiteCipher("main", key)
    sealed = cipher.seal(unit_vectors(1)[0], "p1", "Ada", "t1", MODEL)
    assert cipher.open(sealed, "p1", "Ada", MODEL, 128).shape == (128,)
    with pytest.raises(SiteKeyError):
        cipher.open(sealed, "p2", "Ada", MODEL, 128)  # moved to another person
    with pytest.raises(SiteKeyError):
        SiteCipher("other", key).open(sealed, "p1", "Ada", MODEL, 128)  # another site
