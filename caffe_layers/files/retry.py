"""Remote reads that fail for a moment are tried again: which failures, how often, how long apart.

A failure is *transient* when trying again later may succeed: throttling (HTTP 429, S3's 503
``SlowDown``), any other 5xx but 501, a request timeout (408), a reset, refused or dropped
connection, a read or connect timeout, a truncated response. It is found from the exception and
its causes (``__cause__``/``__context__``): an HTTP status where a client keeps one (aiohttp's
``status``, botocore's ``response``, google's ``code``, azure's ``status_code``), else the type
(``ConnectionError``, ``TimeoutError``, aiohttp's connection and payload errors, botocore's
HTTP client errors) or the errno. Everything else is *permanent* (403, 404, a missing key, a
bad request): no retry, the usual error naming the URL and the list line.

:data:`POLICY`: at most 8 attempts; the waits between them double from 2 s to at most 30 s
(2, 4, 8, 16, 30, 30, 30) and each is shortened by up to half at random (jitter, so that many
workers throttled together do not come back together): 1 to 2 minutes in all before a read
fails. Every retry is counted per process (:func:`take_retries`) and reported with the batch, so
the layer's process prints how many reads were retried.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import random
import sys
import threading
import time
from typing import Awaitable, Callable, Iterator, Tuple, TypeVar

T = TypeVar("T")
TRANSIENT_ERRNOS = frozenset(getattr(errno, name) for name in (
    "ECONNRESET", "ECONNREFUSED", "ECONNABORTED", "ETIMEDOUT", "EPIPE", "EAGAIN", "EHOSTUNREACH",
    "ENETUNREACH", "ENETDOWN", "ENETRESET") if hasattr(errno, name))
# Error codes S3-compatible stores send with a throttled or failed request.
TRANSIENT_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "TooManyRequests",
                             "RequestLimitExceeded", "RequestTimeout", "InternalError",
                             "ServiceUnavailable", "503", "500", "429"})
_RANDOM = random.SystemRandom()  # no state: forked workers must not all wait alike


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` in all; the wait after attempt ``k`` (1-based) is ``min(max_delay_s,
    first_delay_s * 2**(k-1))``, shortened by up to ``jitter`` of itself at random."""

    attempts: int = 8
    first_delay_s: float = 2.0
    max_delay_s: float = 30.0
    jitter: float = 0.5

    def delay_s(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (1-based)."""
        longest = min(self.max_delay_s, self.first_delay_s * 2 ** (attempt - 1))
        return longest * (1.0 - self.jitter * _RANDOM.random())

    def longest_total_s(self) -> float:
        """The most time spent waiting before a read fails."""
        return sum(min(self.max_delay_s, self.first_delay_s * 2 ** k)
                   for k in range(self.attempts - 1))


POLICY = RetryPolicy()


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes and contexts, each once."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def http_status(exc: BaseException) -> Tuple[int | None, str]:
    """``(HTTP status, error code)`` from the first exception of the chain that has them."""
    for item in _chain(exc):
        response = getattr(item, "response", None)
        if isinstance(response, dict):  # botocore's ClientError
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = str(response.get("Error", {}).get("Code", ""))
            if status or code:
                return (int(status) if status else None), code
        for name in ("status", "status_code", "code"):
            value = getattr(item, name, None)
            if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
                return value, ""
    return None, ""


def _loaded(module: str, *names: str) -> tuple:
    """The classes ``names`` of ``module`` if it is loaded (if not, none of them was raised)."""
    found = sys.modules.get(module)
    return tuple(getattr(found, name) for name in names if hasattr(found, name))


def _transient_type(item: BaseException) -> bool:
    timeouts = (TimeoutError,) + _loaded("asyncio", "TimeoutError") \
        + _loaded("concurrent.futures", "TimeoutError")
    if isinstance(item, (ConnectionError,) + timeouts):
        return True
    if isinstance(item, OSError) and item.errno in TRANSIENT_ERRNOS:
        return True
    return isinstance(item, _loaded("aiohttp", "ClientConnectionError", "ClientPayloadError")
                      + _loaded("botocore.exceptions", "HTTPClientError")
                      + _loaded("botocore.parsers", "ResponseParserError")
                      + _loaded("http.client", "IncompleteRead"))


def transient(exc: BaseException) -> bool:
    """Whether a read that raised ``exc`` may succeed if tried again (see module docstring)."""
    status, code = http_status(exc)
    if code in TRANSIENT_CODES:
        return True
    if status is not None:
        return status in (408, 429) or (status >= 500 and status != 501)
    return any(_transient_type(item) for item in _chain(exc))


def describe(exc: BaseException) -> str:
    """A short account of a failed read: ``HTTP 503 SlowDown: <message>`` or ``<Type>: <message>``
    (not yet redacted)."""
    status, code = http_status(exc)
    reason = getattr(exc, "message", None)  # aiohttp's: the status line's reason phrase
    if status is not None and isinstance(reason, str) and reason.strip():
        return f"HTTP {status} {reason.strip()}"
    text = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)).strip()
    if status is not None or code:
        label = " ".join(filter(None, (f"HTTP {status}" if status else "", code)))
        return label if not text or text.startswith(label) or text == code \
            else f"{label}: {text}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class GaveUp(Exception):
    """A transient failure that lasted through every attempt; ``last`` is its final exception."""

    def __init__(self, last: BaseException, attempts: int, elapsed_s: float) -> None:
        super().__init__(f"after {attempts} attempts over {elapsed_s:.1f} s")
        self.last = last
        self.attempts = attempts
        self.elapsed_s = elapsed_s


class RetryCount:
    """Retries of this process since they were last taken, and the latest one's account."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._last = ""

    def add(self, account: str) -> None:
        with self._lock:
            self._count += 1
            self._last = account

    def take(self) -> Tuple[int, str]:
        """``(retries, the latest one's account)`` since the last take; counting restarts."""
        with self._lock:
            taken = (self._count, self._last)
            self._count, self._last = 0, ""
        return taken

    def reset(self) -> None:
        """In a forked child: the parent's retries are the parent's to report."""
        self._lock = threading.Lock()
        self._count, self._last = 0, ""


RETRIES = RetryCount()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=RETRIES.reset)


def take_retries() -> Tuple[int, str]:
    """This process's retried reads since the last call, and an account of the latest."""
    return RETRIES.take()


def with_retries(read: Callable[[], T], account: Callable[[BaseException], str],
                 policy: RetryPolicy | None = None) -> T:
    """``read()``, tried again after each transient failure as ``policy`` says (default
    :data:`POLICY`, looked up at call time); every retry is counted with ``account(exc)``.

    Raises a permanent failure at once, and :class:`GaveUp` when the attempts run out.
    """
    policy = policy or POLICY
    started = time.monotonic()
    for attempt in range(1, policy.attempts + 1):
        try:
            return read()
        except Exception as exc:
            time.sleep(_wait_after(exc, attempt, started, policy, account))
    raise AssertionError("unreachable")  # pragma: no cover


async def with_retries_async(read: Callable[[], Awaitable[T]],
                             account: Callable[[BaseException], str],
                             policy: RetryPolicy | None = None) -> T:
    """:func:`with_retries` of a coroutine: ``await read()``, waiting with ``asyncio.sleep``."""
    import asyncio  # here: local files never need it

    policy = policy or POLICY
    started = time.monotonic()
    for attempt in range(1, policy.attempts + 1):
        try:
            return await read()
        except Exception as exc:
            await asyncio.sleep(_wait_after(exc, attempt, started, policy, account))
    raise AssertionError("unreachable")  # pragma: no cover


def _wait_after(exc: Exception, attempt: int, started: float, policy: RetryPolicy,
                account: Callable[[BaseException], str]) -> float:
    """The wait before trying again after attempt ``attempt`` raised ``exc``, counted as a
    retry; raises ``exc`` if it is permanent, :class:`GaveUp` after the last attempt."""
    if not transient(exc):
        raise exc
    if attempt == policy.attempts:
        raise GaveUp(exc, attempt, time.monotonic() - started) from exc
    RETRIES.add(account(exc))
    return policy.delay_s(attempt)
