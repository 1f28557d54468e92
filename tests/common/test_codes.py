"""A city's own codes (issue 20): printable text with case kept, and the safe slug a code becomes
inside an indicator code."""

import re

import pytest

from citystat_common.codes import city_code, code_slug, quote_code

SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,39}$")
NYC = ["Abandoned Bike", "NYC H+H", "3-1-1", "dohmh", "Noise - Street/Sidewalk", "Dead/Dying Tree", "Café Permit"]


@pytest.mark.parametrize("code", NYC)
def test_a_city_code_is_kept_as_it_is(code):
    assert city_code(code) == code


@pytest.mark.parametrize("code, why", [
    ("", "1-40"), ("x" * 41, "1-40"), (" NYPD", "space"), ("NYPD ", "space"), ("A\nB", "printable"),
    ("A\tB", "printable"), ("A,B", "','"),
])
def test_what_is_not_a_code(code, why):
    with pytest.raises(ValueError, match=why):
        city_code(code)


def test_a_department_code_has_no_slash():
    with pytest.raises(ValueError, match="'/'"):
        city_code("A/B", slash=False)


def test_codes_that_are_already_segments_are_their_own_slug():
    for code in ("STREETS", "POTHOLE", "3-1-1", "dohmh", "WATER_MAIN"):
        assert code_slug(code) == code


@pytest.mark.parametrize("code", NYC + ["x" * 40, "!!!", "é" * 40])
def test_every_slug_is_one_indicator_code_segment(code):
    assert SEGMENT.match(code_slug(code)), code_slug(code)


def test_slugs_keep_the_words_and_never_collide():
    assert code_slug("NYC H+H").startswith("NYC_H_H-")
    assert code_slug("Café Permit").startswith("Cafe_Permit-")
    near = ["NYC H+H", "NYC H-H", "NYC H H", "NYC_H_H", "nyc h+h", "Noise - Street/Sidewalk", "Noise - Street Sidewalk"]
    assert len({code_slug(c) for c in near}) == len(near)


def test_a_code_in_a_url_is_one_segment():
    assert quote_code("NYC H+H") == "NYC%20H%2BH"
    assert quote_code("Noise - Street/Sidewalk") == "Noise%20-%20Street%2FSidewalk"
