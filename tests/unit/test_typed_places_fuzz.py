"""Text an artist types: the `locations` lines of Location Guidance and a Person's `box`. Words, symbols,
huge or missing numbers: a RealisIDInputError naming the input, or valid places; never a raw exception."""
import random

import pytest

from realisid_core.errors import RealisIDInputError
from realisid_core.people.locations import parse_locations
from realisid_core.people.people import box_from_fractions



@pytest.mark.parametrize("text, says", [
    ("left top big small", "'left' is not a number"),
    ("0.5 0.4 0.3 wide", "'wide' is not a number"),
    ("0.5 0.4 0.3", "expected 4 numbers 'cx cy w h', got 3 (0.5 0.4 0.3)"),
    ("", "expected 4 numbers 'cx cy w h', got 0"),
    ("0.5 0.4 0 0.3", "zero or negative size"),
    ("5 5 0.3 0.3", "lies entirely outside the picture"),
    ("nan 0.4 0.3 0.3", "not a number"),
    ("1e999 0.4 0.3 0.3", "not a number"),
])
def test_a_person_box_with_words_or_wrong_numbers_is_a_clear_error(text, says):
    with pytest.raises(RealisIDInputError) as refused:
        box_from_fractions(text, "box")
    assert str(refused.value).startswith("input 'box': ") and says in str(refused.value)


def test_a_typed_box_reads_commas_and_spaces():
    assert box_from_fractions("0.5, 0.4,0.3 0.2", "box") == (0.5, 0.4, 0.3, 0.2)
    assert box_from_fractions(["0.5", 0.4, 0.3, "0.2"], "box") == (0.5, 0.4, 0.3, 0.2)


WORDS = ["0.5", "0.4", "0.25", "0.3", "1", "0", "-0.2", "1e999", "-1e999", "nan", "inf", "1_0", "0x10", "abc", "é",
         "#", "# note", ",", ",,", " ", "\t", "1e-300", "9" * 400, "0.5.5", "--1", "+0.3", "½", "٣", "\x00", "None",
         "[0.5]", "(0.4)", "0,5", "1/2", "\u00a0", "\u2003"]


GOOD = ["0.5", "0.4", "0.25", "0.3", "+0.3", "0.6", "# a comment"]


def random_text(rng: random.Random) -> str:
    lines = []
    words = GOOD if rng.random() < 0.4 else WORDS
    for _ in range(rng.randint(0, 12 if words is WORDS else 3)):
        n = rng.choice([0, 1, 2, 3, 3, 3, 4, 4, 5, 9])
        sep = rng.choice([" ", ",", ", ", "\t", "  "])
        lines.append(sep.join(rng.choice(words) for _ in range(n)))
    return rng.choice(["\n", "\r\n", "\r", "\n\n"]).join(lines)


def test_fuzz_locations_text_gives_places_or_a_clear_error():
    rng = random.Random(11)
    valid = 0
    for _ in range(3000):
        text = random_text(rng)
        width, height = rng.choice([(512, 512), (768, 512), (64, 4096)])
        try:
            locations = parse_locations(text, width, height)
        except RealisIDInputError as exc:
            assert str(exc).startswith("input 'locations': ") and "Fix:" in str(exc)
            continue
        valid += 1
        assert 1 <= locations.count <= 8 and bool((locations.boxes[:, 2:] > 0).all())
    assert valid > 20


def test_fuzz_box_text_gives_a_box_or_a_clear_error():
    rng = random.Random(12)
    valid = 0
    for _ in range(3000):
        words = GOOD[:-1] if rng.random() < 0.3 else WORDS
        text = rng.choice([" ", ",", ", "]).join(rng.choice(words) for _ in range(rng.choice([3, 4, 4, 4, 5])))
        try:
            box = box_from_fractions(text, "box")
        except RealisIDInputError as exc:
            assert str(exc).startswith("input 'box': ")
            continue
        valid += 1
        assert len(box) == 4 and box[2] > 0 and box[3] > 0
    assert valid > 20


@pytest.mark.parametrize("width, height", [(0, 512), (512, -1), (float("nan"), 512), (None, 512)])
def test_a_picture_without_a_size_is_refused(width, height):
    with pytest.raises(RealisIDInputError, match="width/height"):
        parse_locations("0.5 0.4 0.2", width, height)
