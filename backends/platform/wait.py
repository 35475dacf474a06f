"""The one way the platform and its tests wait: poll a condition until it
holds or a deadline passes (tenacity underneath), never a fixed sleep."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """The condition did not hold in time; the message says what was awaited."""


def wait_until(
    condition: Callable[[], T], timeout: float, what: str, interval: float = 0.02, max_interval: float = 0.5
) -> T:
    """Call ``condition`` until it returns something truthy and return that;
    raise :class:`WaitTimeout` ("timed out after N s waiting for WHAT") when
    ``timeout`` seconds pass first.  Polls start at ``interval`` and back off
    to ``max_interval``, so short waits are quick and long ones cheap."""
    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_exponential(multiplier=interval, min=interval, max=max_interval),
        retry=retry_if_result(lambda value: not value),
        reraise=True,
    )
    try:
        return retrying(condition)
    except RetryError:
        raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}") from None
