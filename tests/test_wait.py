"""backends.platform.wait: the one polling helper."""

from __future__ import annotations

import pytest

from backends.platform.wait import WaitTimeout, wait_until


def test_returns_the_first_truthy_value() -> None:
    calls = iter([0, None, "", [], "ready", "later"])
    assert wait_until(lambda: next(calls), 5, "a value") == "ready"


def test_times_out_naming_what_it_waited_for() -> None:
    with pytest.raises(WaitTimeout, match="waiting for the moon"):
        wait_until(lambda: False, 0.1, "the moon")


def test_exceptions_from_the_condition_are_not_swallowed() -> None:
    def boom() -> bool:
        raise ValueError("broken probe")

    with pytest.raises(ValueError, match="broken probe"):
        wait_until(boom, 1, "a probe")
