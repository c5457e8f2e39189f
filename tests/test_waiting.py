"""The one polling helper of the tests (tests/waiting.py)."""

from __future__ import annotations

import itertools

import pytest

from waiting import eventually, eventually_async


def test_eventually_returns_the_first_truthy_value() -> None:
    calls = itertools.count()
    assert eventually(lambda: next(calls) >= 3 and "done", what="three calls", interval=0) == "done"


def test_eventually_names_what_it_waited_for_and_the_last_value_on_timeout() -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0\.05s waiting for: the answer \(last: 0\)"):
        eventually(lambda: 0, what="the answer", timeout=0.05)


def test_eventually_treats_ignored_exceptions_as_not_yet_and_others_as_failures() -> None:
    calls = itertools.count()

    def flaky() -> bool:
        if next(calls) < 2:
            raise ConnectionError("not up yet")
        return True

    assert eventually(flaky, what="up", ignoring=(ConnectionError,), interval=0) is True
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        eventually(lambda: 1 / 0, what="never", timeout=0.05, ignoring=(ZeroDivisionError,))

    def exited() -> bool:
        raise AssertionError("the process exited")

    with pytest.raises(AssertionError, match="the process exited"):  # ends the wait at once
        eventually(exited, what="never", timeout=60)


async def test_eventually_async_accepts_plain_and_coroutine_predicates() -> None:
    calls = itertools.count()

    async def ready() -> int:
        return next(calls) >= 2 and 7

    assert await eventually_async(ready, what="ready", interval=0) == 7
    assert await eventually_async(lambda: [1], what="a list") == [1]
    with pytest.raises(AssertionError, match="waiting for: nothing"):
        await eventually_async(lambda: None, what="nothing", timeout=0.05)
