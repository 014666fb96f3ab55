"""Issue 12 item 15: a token file with impossible scrypt parameters is a one-line error, not a traceback."""
from __future__ import annotations

import json

import pytest

from edge.exc import AuthError
from edge.gallery import auth


@pytest.mark.parametrize("changes", [{"n": 3}, {"n": 2 ** 30}, {"n": 0}, {"r": 0}, {"p": 10 ** 6}, {"n": "lots"},
                                     {"salt": "zz"}, {"n": 2.5}])
def test_impossible_parameters_say_the_file_is_damaged(tmp_path, changes):
    token_file = tmp_path / "gallery.admin-token"
    auth.set_token(token_file, "first-token")
    stored = json.loads(token_file.read_text())
    stored.update(changes)
    token_file.write_text(json.dumps(stored))
    token_file.chmod(0o600)
    with pytest.raises(AuthError, match="is damaged") as caught:
        auth.require_token(token_file, "first-token")
    assert "\n" not in str(caught.value) and "as root" in str(caught.value)
