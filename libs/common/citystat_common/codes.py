"""A city's own codes (issue 20): service and department codes as the city has them, and the safe
slug a code becomes where it is part of an indicator code.

A code is printable text of 1-40 characters, case kept and looked up exactly ("Abandoned Bike",
"NYC H+H", "3-1-1", "dohmh"): a city's other systems use these codes, so they are data, not
identifiers of ours. Refused: control characters, leading or trailing spaces (a typo, never a
code), and "," (the Open311 search takes comma lists of codes). A department code may not hold "/"
either (it is one path segment of the directory's /departments/{code}/senior-team); a service code
may ("Noise - Street/Sidewalk": its routes take the rest of the path). In a URL a code is always
percent-encoded (``quote_code``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import quote

CODE_MAX = 40
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,39}$")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9]+")
SLUG_HASH_HEX = 6


def city_code(value: str, *, what: str = "code", slash: bool = True) -> str:
    """The code as given, or ValueError saying what is wrong (pydantic turns it into a 422)."""
    if not value or len(value) > CODE_MAX:
        raise ValueError(f"a {what} is 1-{CODE_MAX} characters")
    if value != value.strip():
        raise ValueError(f"a {what} does not begin or end with a space")
    if not value.isprintable():
        raise ValueError(f"a {what} is printable text (no tabs, line breaks or control characters)")
    if "," in value:
        raise ValueError(f"a {what} may not contain ',' (searches take comma-separated lists of codes)")
    if not slash and "/" in value:
        raise ValueError(f"a {what} may not contain '/'")
    return value


def code_slug(code: str) -> str:
    """A code as one segment of an indicator code (``311.<dept slug>.<service slug>.<metric>``:
    letters, digits, _ and -, at most 40). A code that already is such a segment is its own slug
    (STREETS, POTHOLE, 3-1-1, dohmh: indicator codes of existing departments do not change). Any
    other code: its letters and digits (accents dropped), runs of anything else as one "_", then
    "-" and the first 6 hex digits of the SHA-256 of the code itself, so two codes that differ only
    in punctuation or case of the dropped part never share a slug: "NYC H+H" -> "NYC_H_H-<hash>",
    "Abandoned Bike" -> "Abandoned_Bike-<hash>". The original code is kept beside it for display."""
    if _SEGMENT.match(code):
        return code
    ascii_text = unicodedata.normalize("NFKD", code).encode("ascii", "ignore").decode()
    words = _UNSAFE_RUN.sub("_", ascii_text).strip("_") or "code"
    digest = hashlib.sha256(code.encode("utf-8")).hexdigest()[:SLUG_HASH_HEX]
    return f"{words[:CODE_MAX - SLUG_HASH_HEX - 1]}-{digest}"


def quote_code(code: str) -> str:
    """The code as one URL path segment (every reserved character percent-encoded, "/" too)."""
    return quote(code, safe="")
