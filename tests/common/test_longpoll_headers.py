"""The long-poll headers (citystat_common.longpoll), read without I/O."""

from __future__ import annotations

import pytest

from citystat_common.longpoll import MAX_WAIT_SECONDS, etag_matches, wait_preference, weak_etag


@pytest.mark.parametrize(("prefer", "seconds"), [
    (None, 0.0), ("", 0.0), ("wait=5", 5.0), ("Wait = 2.5", 2.5), ("respond-async, wait=10", 10.0),
    ('wait="3"', 3.0), ("wait=3; foo=bar", 3.0), ("wait=100000", MAX_WAIT_SECONDS), ("wait=-1", 0.0),
    ("wait=soon", 0.0), ("wait=nan", 0.0), ("return=minimal", 0.0), ("waiting=4", 0.0),
])
def test_the_wait_preference_is_read_as_rfc_7240_says_and_capped(prefer, seconds):
    assert wait_preference(prefer) == seconds


def test_etags_compare_weakly_and_in_lists():
    tag = weak_etag(b"page")
    assert tag.startswith('W/"') and tag != weak_etag(b"other page")
    assert etag_matches(tag, tag) and etag_matches(tag.removeprefix("W/"), tag)
    assert etag_matches(f'"x", {tag}', tag) and etag_matches("*", tag)
    assert not etag_matches(None, tag) and not etag_matches('"x"', tag) and not etag_matches("", tag)
