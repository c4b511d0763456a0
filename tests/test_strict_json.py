"""Both implementations read strict JSON only (docs/scenario-format.md "File"): what one parser would
accept and the other refuse is refused by both, as an invalid file."""

import pytest

BASE = '{"instruments": [], "providers": [], "events": [%s]}'


@pytest.mark.parametrize(
    "event",
    [
        '{"type": "mark", "symbol": "\\ud800", "price": "1"}',  # lone surrogate escape
        '{"type": "mark", "n": 1e400}',  # not finite as a double
        '{"type": "mark", "n": 1' + "0" * 400 + "}",
        '{"type": "mark", "price": NaN}',
        "[" * 126 + "]" * 126,  # 128 levels with the file's object and the events array
    ],
)
def test_not_strict_json_is_an_invalid_file(replay, event):
    with pytest.raises(ValueError, match="not JSON"):
        replay(BASE % event)


def test_nesting_up_to_127_levels_is_read(replay):
    assert replay(BASE % ("[" * 125 + "]" * 125)) == [
        {"event": 0, "kind": "error", "message": "event must be an object"}
    ]
