"""Refusals made before an Open311 route runs (the write rate limit, text with a NUL character):
on those routes they are the spec's error document in the route's format, like every other Open311
error; elsewhere (None) the shared problem+json stands. Set on ``app.state`` by ``create_app``."""

from __future__ import annotations

import re

from fastapi import Response

from intake311.open311_documents import FORMATS, Open311Error, error_response

# /discovery.json, /services/POTHOLE.xml, /requests/12.json, /tokens/<uuid>.xml, at the root and under
# /open311/v2; an extension that is not a format still gets the XML document, as the route gives it
_OPEN311_PATH = re.compile(r"^(?:/open311/v2)?/(?:discovery|services|requests|tokens)(?:/[^/]+)?\.([^/.]*)$")


def open311_format(path: str) -> str | None:
    """The format an Open311 route answers this path in; None for any other route."""
    m = _OPEN311_PATH.match(path)
    if m is None:
        return None
    return m.group(1) if m.group(1) in FORMATS else "xml"


def rate_limited(path: str, retry: int) -> Response | None:
    """``app.state.rate_limit_response``: the 429 (the limiter adds Retry-After)."""
    fmt = open311_format(path)
    if fmt is None:
        return None
    return error_response(fmt, Open311Error([(429, f"write rate limit exceeded; retry in {retry} s")]))


def bad_input(path: str, detail: str) -> Response | None:
    """``app.state.bad_input_response``: text the database cannot store, a 400 as any bad parameter is."""
    fmt = open311_format(path)
    if fmt is None:
        return None
    return error_response(fmt, Open311Error([(400, detail)]))
