"""A bad setting stops any command with its one-line message and exit status 2."""

from __future__ import annotations

import pytest

from web.cli import main


@pytest.mark.parametrize(("name", "value", "says"), [
    ("HH_CHAT_RATE_MESSAGES", "0", "HH_CHAT_RATE_MESSAGES must be at least 1, got 0"),
    ("HH_SERVICE_TARGET", "2", "HH_SERVICE_TARGET must be between 0.0 and 1.0, got 2.0"),
    ("PORT", "eighty", "PORT must be an integer, got 'eighty'"),
])
def test_a_bad_setting_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    name: str, value: str, says: str,
) -> None:
    monkeypatch.setenv(name, value)
    assert main(["serve", "--port", "0"]) == 2
    out, err = capsys.readouterr()
    assert err == f"homework-help serve: {says}\n"
    assert out == "" and "Traceback" not in err
