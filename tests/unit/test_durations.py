from datetime import timedelta

import pytest

from shared.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("200ms", timedelta(milliseconds=200)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(minutes=90)),
        ("1.5s", timedelta(milliseconds=1500)),
        (2, timedelta(seconds=2)),
        (0.25, timedelta(milliseconds=250)),
    ],
)
def test_parses_user_forms(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["5 minutes", "", "10", "1x", "-5s", -1, True, None, "ms"])
def test_rejects_bad_forms_naming_the_value(bad: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(bad)


@pytest.mark.parametrize("text", ["200ms", "30s", "5m", "1h", "1h30m", "1d2h3m4s5ms"])
def test_format_is_the_inverse_of_parse(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize("huge", [10**17, "99999999999999d", float("inf")])
def test_too_large_is_a_validation_error_not_a_crash(huge: object) -> None:
    with pytest.raises(ValueError, match="too large"):
        parse_duration(huge)
