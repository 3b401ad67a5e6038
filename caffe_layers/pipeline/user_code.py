"""The user's own classes and functions: import them by name, read their signatures, close them.

``param_str`` names user code as ``"module:name"``; workers import it again by that name, so the
producers that run it pickle as plain strings. Signatures decide how the code is called, so that
code written for keras runs unchanged: ``__getitem__(self, i)`` or ``(self, i, rng)``, a
generator function with or without ``worker_id``/``workers``.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, Sequence

from caffe_layers.errors import ConfigError


def import_object(spec: str, key: str) -> Any:
    """The callable named by ``'module:name'`` (``name`` may be dotted); ConfigError if absent."""
    module_name, _, name = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{key}: cannot import module '{module_name}' ({exc}); it must be "
                          f"importable through PYTHONPATH (caffe does not add the working "
                          f"directory)") from exc
    for part in name.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"{key}: module '{module_name}' has no '{name}'")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"{key}: '{spec}' is a {type(target).__name__}, not a class or "
                          f"function")
    return target


def close_if_closable(obj: Any) -> None:
    """Call ``obj.close()`` if it has one (a dataset holding files, a generator)."""
    close = getattr(obj, "close", None)
    if callable(close):
        close()


def _signature(function: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(function)  # follows functools.wraps' __wrapped__
    except (TypeError, ValueError):  # some builtins have none
        return None


def accepts_keywords(function: Callable, names: Sequence[str]) -> bool | None:
    """Whether ``function`` takes every one of ``names`` as a keyword argument.

    None when it cannot be told: no signature, or a bare ``**kwargs`` that may pass them on to
    code that does not take them (a decorator's wrapper written without ``functools.wraps``).
    """
    signature = _signature(function)
    if signature is None:
        return None
    kinds = {name: p.kind for name, p in signature.parameters.items()}
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    if all(kinds.get(name) in keyword for name in names):
        return True
    if inspect.Parameter.VAR_KEYWORD in kinds.values():
        return None
    return False


def positional_count(method: Callable) -> int | None:
    """How many positional arguments a bound ``method`` takes at most (None: any number)."""
    signature = _signature(method)
    if signature is None:
        return 1  # a builtin's __getitem__ (a list subclass): the index only
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    count = 0
    for parameter in signature.parameters.values():
        if parameter.kind == inspect.Parameter.VAR_POSITIONAL:
            return None
        count += parameter.kind in positional
    return count
