"""Issue 12 item 13: names cannot spoof the list or the log, and one name is one person.

Bidirectional overrides and other format characters reorder or hide text in `gallery
list` and in the audit log; C1 control characters are terminal escapes. Names are
normalised to NFC, so the composed and decomposed spellings of a name are one person.
"""
from __future__ import annotations

import unicodedata

import pytest

from edge.exc import GalleryError

MODEL = "dlib_resnet_v1"


@pytest.mark.parametrize("name", ["Admin\u202enimda", "Bob\u009b31m", "Eve\u2066x\u2069", "Mal\u200elory",
                                  "Zero\ufeffwidth", "Line\u2028break", "Tab\tname", "Del\x7fete"])
def test_names_with_control_or_format_characters_are_refused(gallery, make_vectors, name):
    with pytest.raises(GalleryError, match="control or format character"):
        gallery.add_person_templates(name, make_vectors(1, 1), MODEL, "test")
    assert gallery.list_people() == []


def test_composed_and_decomposed_spellings_are_one_person(gallery, make_vectors):
    composed, decomposed = "Jos\u00e9 Mar\u00eda", unicodedata.normalize("NFD", "Jos\u00e9 Mar\u00eda")
    assert composed != decomposed
    gallery.add_person_templates(decomposed, make_vectors(1, 2), MODEL, "test")
    assert [person["name"] for person in gallery.list_people()] == [composed]  # stored as NFC
    with pytest.raises(GalleryError, match="already enrolled"):
        gallery.add_person_templates(composed, make_vectors(2, 2), MODEL, "test")
    assert gallery.show(decomposed)["name"] == composed
    assert gallery.remove_person(decomposed, "test") == 2


def test_joiners_inside_words_stay_allowed(gallery, make_vectors):
    # U+200C ZERO WIDTH NON-JOINER is part of ordinary Persian spelling; it reorders nothing.
    gallery.add_person_templates("\u0645\u062d\u0645\u062f\u200c\u0631\u0636\u0627", make_vectors(1, 1), MODEL, "test")
    assert len(gallery.list_people()) == 1
