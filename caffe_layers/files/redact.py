"""Credentials never printed: URLs and messages with their secrets replaced by ``***``.

A URL may carry credentials in its user info (``https://user:password@host/...``) and in its
query (a presigned S3 URL's ``X-Amz-Signature``, an Azure SAS token's ``sig``): every message
names a URL through :func:`redact_url`, which hides both (query values, not names). A message
that comes from a storage client (an exception's text) goes through :func:`redact_text`, which
also hides every string of the ``storage_options`` and the values of the environment variables
that hold credentials (``AWS_SECRET_ACCESS_KEY``, ``AZURE_STORAGE_KEY``, ...), wherever they
appear in it.
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterator, Mapping

HIDDEN = "***"
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#@\s]*@)")
_QUERY_VALUE = re.compile(r"(?P<name>[?&][^=&#\s]*=)(?P<value>[^&#\s]*)")
_SECRET_VARIABLE = re.compile(r"SECRET|TOKEN|PASSWORD|CREDENTIAL|_KEY$|ACCESS_KEY|SAS|SIGNATURE",
                              re.IGNORECASE)
_SHORTEST_SECRET = 4  # shorter strings (a region "eu", a flag "1") would mangle messages


def redact_url(url: str) -> str:
    """``url`` with its user info and query values hidden; a local path is returned unchanged."""
    url = _USERINFO.sub(lambda m: f"{m.group('scheme')}{HIDDEN}@", url)
    if "://" in url and "?" in url:
        head, _, query = url.partition("?")
        url = f"{head}?{_QUERY_VALUE.sub(_hide_value, '?' + query)[1:]}"
    return url


def _hide_value(match: re.Match) -> str:
    return f"{match.group('name')}{HIDDEN}" if match.group("value") else match.group(0)


def _strings(value: Any) -> Iterator[str]:
    """Every string inside ``value`` (nested mappings and lists)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def secrets(storage_options: Mapping[str, Any] | None = None) -> list:
    """The strings to hide: every string of ``storage_options`` and the credential variables'
    values, longest first (so that a secret containing another is hidden whole)."""
    found = set(_strings(storage_options or {}))
    found.update(value for name, value in os.environ.items() if _SECRET_VARIABLE.search(name))
    return sorted((s for s in found if len(s) >= _SHORTEST_SECRET), key=len, reverse=True)


def redact_text(text: str, url: str = "", storage_options: Mapping[str, Any] | None = None
                ) -> str:
    """``text`` (e.g. a storage client's error message) with ``url`` redacted and every secret
    hidden."""
    if url:
        text = text.replace(url, redact_url(url))
    for secret in secrets(storage_options):
        text = text.replace(secret, HIDDEN)
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}{HIDDEN}@", text)


def describe_options(storage_options: Mapping[str, Any] | None) -> str:
    """``storage_options`` for a setup line: the keys, every value hidden."""
    if not storage_options:
        return ""
    return "{" + ", ".join(f"{key}: {HIDDEN}" for key in storage_options) + "}"
