"""Files at URLs (``s3://``, ``gs://``, ``az://``, ``https://``, any fsspec protocol), read through
fsspec and the storage client its protocol needs.

fsspec is imported on the first URL only, so local paths never load it. The client is created
once per process for each protocol and ``storage_options`` (a forked worker makes its own, as
fsspec requires), with ``storage_options`` handed to it: credentials, ``endpoint_url``,
``anon``, ... Without them the client reads its usual environment variables and config files
(``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ``~/.aws/config``, ``GOOGLE_APPLICATION_CREDENTIALS``,
``AZURE_STORAGE_CONNECTION_STRING``, ...). A library that is not installed is a
:class:`ConfigError` naming the pip command.

Every read is retried as :mod:`caffe_layers.files.retry` says. So that this policy is the one
that retries and counts, the S3 client's own retries are off (s3fs's retry loop makes one
attempt; botocore's ``retries: {total_max_attempts: 1}`` unless ``storage_options`` sets
``config_kwargs: {retries: ...}``); an S3 read is one
GET (``max_concurrency: 1``: no HEAD first), and its connection pool holds every read in
flight. HTTP reads give up on a connection after 30 s and on a stalled response after 60 s, and
are retried then.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from typing import Any, Awaitable, Dict, Mapping, Tuple

from caffe_layers.errors import ConfigError
from caffe_layers.files.redact import redact_text, redact_url
from caffe_layers.files.retry import (
    GaveUp,
    describe,
    http_status,
    with_retries,
    with_retries_async,
)

EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure",
          "abfss": "azure", "http": "remote", "https": "remote"}
S3_POOL_CONNECTIONS = 64  # at least the reads a process keeps in flight (read_ahead.py)
HTTP_CONNECT_TIMEOUT_S = 30.0
HTTP_READ_TIMEOUT_S = 60.0
_clients: Dict[Tuple[int, str, str], Any] = {}


def _forget_fsspecs_loop() -> None:
    """In a forked child: fsspec's event loop runs in a thread of the parent only. Recent fsspec
    resets it after a fork itself; 2025.3 (the last for Python 3.8) does not, and a forked
    worker's reads waited forever on the parent's loop."""
    asyn = sys.modules.get("fsspec.asyn")
    if asyn is not None and hasattr(asyn, "reset_lock"):
        asyn.reset_lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_fsspecs_loop)


def protocols(url: str) -> Tuple[str, ...]:
    """The protocols of ``url``, outermost first: ``('simplecache', 's3')``, ``('https',)``."""
    return tuple(link.split("://", 1)[0].lower() for link in url.split("::"))


def _install_hint(protocol: str, package: str) -> str:
    extra = EXTRAS.get(protocol)
    if extra:
        return f"pip install 'caffe-layers[{extra}]'"
    return f"pip install {package}"


def _missing_library(url: str, protocol: str, exc: ImportError, where: str) -> ConfigError:
    try:
        from fsspec.registry import known_implementations
    except ImportError:
        return ConfigError(f"{where} is a URL; reading URLs needs fsspec: "
                           f"{_install_hint(protocol, 'fsspec')}")
    entry = known_implementations.get(protocol, {})
    package = entry.get("class", "fsspec").split(".")[0]
    needs = "aiohttp" if protocol in ("http", "https") else package
    return ConfigError(f"{where} is a {protocol}:// URL, which needs {needs} "
                       f"({entry.get('err') or exc}): {_install_hint(protocol, needs)}")


def _client_options(protocol: str, storage_options: Mapping[str, Any]) -> dict:
    """``storage_options`` with this module's defaults (see the module docstring) beneath them."""
    options = dict(storage_options)
    if protocol in ("s3", "s3a"):
        options.setdefault("max_concurrency", 1)
        config = {"retries": {"total_max_attempts": 1},
                  "max_pool_connections": S3_POOL_CONNECTIONS}
        options["config_kwargs"] = {**config, **dict(options.get("config_kwargs") or {})}
    elif protocol in ("http", "https"):
        client_kwargs = dict(options.get("client_kwargs") or {})
        if "timeout" not in client_kwargs:
            import aiohttp

            client_kwargs["timeout"] = aiohttp.ClientTimeout(
                total=None, sock_connect=HTTP_CONNECT_TIMEOUT_S, sock_read=HTTP_READ_TIMEOUT_S)
        options["client_kwargs"] = client_kwargs
    return options


def _options_key(storage_options: Mapping[str, Any]) -> str:
    return json.dumps(storage_options, sort_keys=True, default=repr)


def client(url: str, storage_options: Mapping[str, Any] | None, where: str) -> Tuple[Any, str]:
    """``(fsspec filesystem, path to hand it)`` for ``url``, made once per process.

    ``where`` names the file in messages (e.g. ``"source: the image list 's3://b/train.txt'"``).
    ConfigError when the library is missing, the protocol unknown or the options refused.
    """
    storage_options = dict(storage_options or {})
    chain = protocols(url)
    key = (os.getpid(), "::".join(chain) if len(chain) > 1 else chain[0],
           _options_key(storage_options))
    if len(chain) == 1 and key in _clients:
        return _clients[key], url
    try:
        import fsspec
    except ImportError as exc:
        raise _missing_library(url, chain[-1], exc, where) from None
    known = set(fsspec.available_protocols()) | set(fsspec.registry)  # + registered classes
    unknown = [p for p in chain if p not in known]
    if unknown:
        raise ConfigError(f"{where}: '{unknown[0]}://' is not a protocol fsspec knows; give a "
                          f"local path or a URL such as s3://, gs://, az://, https://")
    try:
        if len(chain) > 1:  # a chain: fsspec resolves each link's options itself
            return fsspec.core.url_to_fs(url, **storage_options)
        made = fsspec.filesystem(chain[0], **_client_options(chain[0], storage_options))
        if chain[0] in ("s3", "s3a"):
            made.retries = 1  # s3fs's own retry loop: one attempt, the policy retries
    except ImportError as exc:
        raise _missing_library(url, chain[-1], exc, where) from None
    except (TypeError, ValueError, KeyError) as exc:
        raise _refused_options(chain[0], exc, storage_options) from None
    _clients[key] = made
    return made, url


def _refused_options(protocol: str, exc: Exception, storage_options: Mapping[str, Any]
                     ) -> ConfigError:
    text = redact_text(str(exc), storage_options=storage_options)
    return ConfigError(f"storage_options: the {protocol}:// client refused them "
                       f"({type(exc).__name__}: {text}); give the options its filesystem class "
                       f"takes")


def failure(exc: BaseException, url: str, storage_options: Mapping[str, Any] | None) -> str:
    """A redacted account of a failed read of ``url``: ``HTTP 503 SlowDown: ...``."""
    return redact_text(describe(exc), url, storage_options)


def _kind(exc: BaseException) -> str:
    status, code = http_status(exc)
    if isinstance(exc, FileNotFoundError) or status == 404 or code in ("NoSuchKey", "404"):
        return "missing"
    if isinstance(exc, PermissionError) or status in (401, 403):
        return "denied"
    return "other"


def read_error(exc: BaseException, url: str, what: str, error: type, prefix: str,
               storage_options: Mapping[str, Any] | None) -> Exception:
    """The message of a read of ``url`` that failed for good: missing, denied, or why."""
    shown = redact_url(url)
    if isinstance(exc, GaveUp):
        account = failure(exc.last, url, storage_options)
        return error(f"{prefix}cannot read {what} '{shown}' {exc}: {account} (transient "
                     f"failures are retried with backoff; is the store throttling or down?)")
    account = failure(exc, url, storage_options)
    kind = _kind(exc)
    if kind == "missing":
        status, code = http_status(exc)
        said = " ".join(filter(None, (f"HTTP {status}" if status else "", code)))
        return error(f"{prefix}{what} '{shown}' does not exist{f' ({said})' if said else ''}")
    if kind == "denied":
        return error(f"{prefix}cannot read {what} '{shown}': access denied ({account}); check "
                     f"the credentials: storage_options, or the client's environment variables "
                     f"and config files")
    return error(f"{prefix}cannot read {what} '{shown}': {account}")


def _account(url: str, storage_options: Mapping[str, Any] | None):
    return lambda exc: f"{failure(exc, url, storage_options)} reading '{redact_url(url)}'"


def read(url: str, what: str, *, error: type, prefix: str = "",
         storage_options: Mapping[str, Any] | None = None, start: int | None = None,
         end: int | None = None) -> bytes:
    """The bytes of ``url`` (``[start, end)`` when given), retried; ``error`` if it fails for
    good, ConfigError when its library is missing."""
    fs, path = client(url, storage_options, f"{prefix}{what} '{redact_url(url)}'")
    if start is None:
        def fetch() -> bytes:
            return fs.cat_file(path)
    else:
        def fetch() -> bytes:
            return fs.cat_file(path, start=start, end=end)
    try:
        return with_retries(fetch, _account(url, storage_options))
    except Exception as exc:
        raise read_error(exc, url, what, error, prefix, storage_options) from None


async def read_async(url: str, what: str, *, error: type, prefix: str = "",
                     storage_options: Mapping[str, Any] | None = None, start: int | None = None,
                     end: int | None = None) -> bytes:
    """:func:`read` as a coroutine on fsspec's event loop (a read ahead): the client's own
    coroutine when it has one on this loop, else its blocking read in the loop's threads."""
    fs, path = client(url, storage_options, f"{prefix}{what} '{redact_url(url)}'")
    loop = asyncio.get_running_loop()
    if getattr(fs, "async_impl", False) and getattr(fs, "loop", None) is loop:
        def fetch() -> Awaitable[bytes]:
            return fs._cat_file(path, start=start, end=end)
    else:
        def fetch() -> Awaitable[bytes]:
            return loop.run_in_executor(None, functools.partial(fs.cat_file, path, start=start,
                                                                end=end))
    try:
        return await with_retries_async(fetch, _account(url, storage_options))
    except Exception as exc:
        raise read_error(exc, url, what, error, prefix, storage_options) from None


def event_loop() -> asyncio.AbstractEventLoop:
    """fsspec's event loop of this process (started on first use), where :func:`read_async`
    runs."""
    from fsspec.asyn import get_loop

    return get_loop()


def size(url: str, what: str, *, error: type, prefix: str = "",
         storage_options: Mapping[str, Any] | None = None) -> int:
    """The size in bytes of the file at ``url``, retried; ``error`` if it fails for good."""
    fs, path = client(url, storage_options, f"{prefix}{what} '{redact_url(url)}'")
    try:
        found = with_retries(lambda: fs.size(path), _account(url, storage_options))
    except Exception as exc:
        raise read_error(exc, url, what, error, prefix, storage_options) from None
    if found is None:
        raise error(f"{prefix}cannot read {what} '{redact_url(url)}': the store does not tell "
                    f"its size, which random access (HDF5) needs")
    return int(found)
