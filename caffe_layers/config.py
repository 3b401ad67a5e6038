"""``param_str`` → frozen dataclasses.

A config class is a frozen dataclass whose fields are declared with :func:`option`. :func:`load`
parses the YAML with ``yaml.safe_load``, rejects unknown keys with a "did you mean" hint, converts
and checks every value, runs the class's cross-field ``problems()``, and raises one
:class:`~caffe_layers.errors.ConfigError` that lists every problem, each naming its key and a fix.

A problem is data, a :class:`Problem`: the keys it involves and what to fix. ``problems()``
returns them and sees every key's value already converted; a key whose value was refused holds
its default instead (None when it is required), and the problems involving it are left out: its
own problem says what to fix first.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import warnings
from typing import Any, Callable, Iterable, Mapping, Sequence, Tuple, TypeVar

from caffe_layers.errors import ConfigError

T = TypeVar("T")
FLOAT32_MAX = 3.4028234663852886e38  # the largest finite float32: Caffe's float fields hold no more


class Problem(str):
    """One problem with a config, as data: its ``keys``, ``text`` saying what to fix, and the
    other keys the check read (``involves``), which the message need not name.

    It is also its message, ``'mean_file, mean_value: give one of them, not both'``.
    """

    keys: Tuple[str, ...]
    text: str
    involves: Tuple[str, ...]

    def __new__(cls, keys: Sequence[str], text: str, involves: Sequence[str] = ()) -> Problem:
        self = super().__new__(cls, f"{', '.join(keys)}: {text}")
        self.keys, self.text, self.involves = tuple(keys), text, tuple(involves)
        return self


def problem(keys: str, text: str) -> Problem:
    """A :class:`Problem` of the keys written as in messages: ``problem("a, b", "...")``."""
    return Problem(tuple(key.strip() for key in keys.split(",")), text)


class _Invalid(Exception):
    """A value failed its check; the message says what was expected."""


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclasses.dataclass(frozen=True)
class Kind:
    """How one key's YAML value is converted: ``convert`` raises ``_Invalid`` on a bad value."""

    name: str
    convert: Callable[[Any], Any]


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or (isinstance(value, float) and not value.is_integer()):  # 1.5, .inf, .nan
        raise _Invalid("must be an integer")
    return int(value)


# PyYAML follows YAML 1.1, where a float needs a dot: `1e-3` loads as the string '1e-3'.
_EXPONENT_FLOAT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _float(value: Any) -> float:
    if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fraction = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*/\s*(\d+(?:\.\d*)?)\s*", str(value))
        if fraction and float(fraction.group(2)):
            raise _Invalid(f"must be a number; write "
                           f"{float(fraction.group(1)) / float(fraction.group(2))!r}")
        raise _Invalid("must be a number")
    try:
        number = float(value)
    except OverflowError:  # an integer literal beyond float range
        raise _Invalid("must be a number within float range") from None
    if not math.isfinite(number):
        raise _Invalid("must be a finite number")
    return number


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("must be true or false")
    return value


def _str(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _Invalid("must be a string")
    return str(value)


def _float_tuple(value: Any) -> tuple:
    items = value if isinstance(value, (list, tuple)) else [value]
    try:
        return tuple(_float(v) for v in items)
    except _Invalid:
        raise _Invalid("must be a number or a list of numbers") from None


def _str_tuple(value: Any) -> tuple:
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(_str(v) for v in items)


def _mapping(value: Any) -> dict:
    if not isinstance(value, dict):
        raise _Invalid("must be a mapping, e.g. {key: value}")
    return dict(value)


INT = Kind("an integer", _int)
FLOAT = Kind("a number", _float)
BOOL = Kind("true or false", _bool)
STR = Kind("a string", _str)
FLOATS = Kind("a number or a list of numbers", _float_tuple)
STRS = Kind("a string or a list of strings", _str_tuple)
MAPPING = Kind("a mapping", _mapping)


def choice(*allowed: str) -> Kind:
    """A string among ``allowed``."""

    def convert(value: Any) -> str:
        if value not in allowed:
            raise _Invalid("must be one of " + ", ".join(repr(a) for a in allowed))
        return value

    return Kind("one of " + ", ".join(allowed), convert)


def option(kind: Kind, default: Any = REQUIRED, *, minimum: float | None = None,
           maximum: float | None = None, example: str = "", doc: str = "",
           caffe: str = "", old_name: str = "", secret: bool = False) -> Any:
    """Declare a config field. ``default=None`` makes the key optional with no value.

    ``doc`` and ``caffe`` (the Caffe setting it replaces, if any) fill the README's tables.
    ``old_name`` is a name the key had before: still read, with a FutureWarning. A ``secret``
    key's value (credentials) is never shown: not in messages, not in the config's repr.
    """
    meta = {"kind": kind, "minimum": minimum, "maximum": maximum, "example": example, "doc": doc,
            "caffe": caffe, "old_name": old_name, "secret": secret}
    return dataclasses.field(default=default, metadata=meta, repr=not secret)


def _check_range(value: Any, meta: Mapping[str, Any]) -> None:
    numbers = value if isinstance(value, tuple) else (value,)
    lo, hi = meta["minimum"], meta["maximum"]
    for number in numbers:
        if lo is not None and number < lo:
            raise _Invalid(f"must be >= {lo:g}")
        if hi is not None and number > hi:
            raise _Invalid(f"must be <= {hi:g}")


def _placeholder(field: dataclasses.Field) -> Any:
    """What a refused key holds while the cross-key checks run: its default (None if required)."""
    return None if field.default is REQUIRED else field.default


def _convert_field(field: dataclasses.Field, raw: Mapping[str, Any]) -> tuple[Any, Problem | None]:
    """The field's value and, when it is bad, its problem."""
    meta = field.metadata
    example = f" (e.g. {field.name}: {meta['example']})" if meta["example"] else ""
    if field.name not in raw:
        if field.default is REQUIRED:
            return None, Problem((field.name,), f"required, {meta['kind'].name}{example}")
        return field.default, None
    value = raw[field.name]
    if value is None and field.default is None:
        return None, None
    try:
        converted = meta["kind"].convert(value)
        _check_range(converted, meta)
    except _Invalid as exc:
        got = f"a {type(value).__name__}, not shown" if meta.get("secret") else repr(value)
        return _placeholder(field), Problem((field.name,), f"{exc} (got {got}){example}")
    return converted, None


def _unknown_keys(raw: Mapping[str, Any], known: Sequence[str],
                  elsewhere: Mapping[str, Sequence[str]]) -> list[Problem]:
    """A problem per key that is not ``known``; ``elsewhere``: key -> the layers that take it."""
    problems = []
    for key in raw:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        if key in elsewhere:
            hint = f"; that is a key of {_and(elsewhere[key])}"
            hint += f"; did you mean {close[0]!r}?" if close else ""
        elif close:
            hint = f"; did you mean {close[0]!r}?"
        else:
            hint = f"; known keys: {', '.join(known)}"
        problems.append(Problem((str(key),), f"unknown key{hint}"))
    return problems


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _renamed(fields: Sequence[dataclasses.Field], raw: Mapping[str, Any], where: str
             ) -> tuple[dict, list[Problem]]:
    """``raw`` with every key given by its ``old_name`` under its name (warning once each)."""
    raw, problems = dict(raw), []
    for field in fields:
        old = field.metadata.get("old_name")
        if not old or old not in raw:
            continue
        if field.name in raw:
            problems.append(Problem((old,), f"is the old name of {field.name}; give only "
                                            f"{field.name}"))
            del raw[old]
            continue
        raw[field.name] = raw.pop(old)
        warnings.warn(f"{where}: '{old}' is deprecated, write '{field.name}' instead (same "
                      f"value)", FutureWarning, stacklevel=4)
    return raw, problems


def parse_yaml(param_str: str) -> dict:
    """``param_str`` as a dict (empty for an empty string); ConfigError if not a mapping."""
    import yaml

    try:
        raw = yaml.load(param_str, Loader=_strict_loader()) if param_str.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        fix = ("one-line YAML needs braces around the whole mapping"
               if _FLATTENED.search(param_str) and not param_str.lstrip().startswith("{")
               else "write a YAML mapping")
        raise ConfigError(f"param_str is not valid YAML{where}: {problem}; {fix}, e.g. "
                          f"param_str: \"{{source: train.txt, batch_size: 64}}\"") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"param_str must be a YAML mapping of key: value, got {param_str!r}; "
                          f"e.g. param_str: \"{{source: train.txt, batch_size: 64}}\"")
    return raw


_YAML_TAG_PREFIX = "tag:yaml.org,2002:"


def _tag_refused(tag: str, path: Sequence[Any]) -> ConfigError:
    """A tag (``!!python/...``, ``!local``): never constructed, whatever the safe loader knows.

    ``path`` holds the indices of the nodes being composed; the first mapping key among them is
    the param_str key the tag sits under.
    """
    import yaml

    keys = [index.value for index in path if isinstance(index, yaml.ScalarNode)]
    shown = "!!" + tag[len(_YAML_TAG_PREFIX):] if tag.startswith(_YAML_TAG_PREFIX) else tag
    where = f"key '{keys[0]}' is tagged '{shown}'" if keys else f"got the tag '{shown}'"
    return ConfigError(f"tags are not allowed in param_str ({where}); write the plain value "
                       f"without the tag, e.g. param_str: \"{{source: train.txt, batch_size: "
                       f"64}}\"")


def _strict_loader() -> type:
    """yaml.SafeLoader refusing a key given twice (PyYAML silently keeps the last one) and any
    explicit tag (PyYAML's own error for ``!!python/...`` names a constructor, not the fix)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def compose_document(self):
            self._path: list = []
            return super().compose_document()

        def compose_node(self, parent, index):
            tag = getattr(self.peek_event(), "tag", None)
            if tag not in (None, "!"):
                raise _tag_refused(tag, self._path + [index])
            self._path.append(index)
            try:
                return super().compose_node(parent, index)
            finally:
                self._path.pop()

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep)

    return StrictLoader


_FLATTENED = re.compile(r",\s*[A-Za-z_]\w*\s*:")


def _flattened_hint(raw: Mapping[str, Any]) -> str:
    """A hint when a value looks like several keys written without braces."""
    for value in raw.values():
        if isinstance(value, str) and _FLATTENED.search(value):
            return ("\nHint: a value contains ', key:'; in one-line YAML wrap the whole mapping in "
                    "braces: \"{source: train.txt, batch_size: 64}\"")
    return ""


def build(cls: type[T], raw: Mapping[str, Any], *, where: str = "param_str",
          elsewhere: Mapping[str, Sequence[str]] | None = None) -> T:
    """Build config ``cls`` from an already parsed mapping; one ConfigError lists every problem.

    ``elsewhere`` maps keys ``cls`` does not take to the layers that do, for the hint.
    """
    fields = [f for f in dataclasses.fields(cls) if f.init]
    known = [f.name for f in fields]
    raw, problems = _renamed(fields, raw, where)
    problems += _unknown_keys(raw, known, elsewhere or {})
    values = {}
    for field in fields:
        values[field.name], refused = _convert_field(field, raw)
        if refused:
            problems.append(refused)
    config = cls(**values)
    problems.extend(_cross_key_problems(config, problems))
    if problems:
        raise ConfigError(_message(where, problems) + _flattened_hint(raw))
    return config


def _cross_key_problems(config: Any, found: Sequence[Problem]) -> list[Problem]:
    """``config.problems()`` that do not involve a key already reported as bad."""
    if not hasattr(config, "problems"):
        return []
    bad_keys = {key for problem in found for key in problem.keys}
    return [p for p in config.problems() if not bad_keys.intersection(p.keys + p.involves)]


def load(cls: type[T], param_str: str, *, where: str = "param_str",
         elsewhere: Mapping[str, Sequence[str]] | None = None) -> T:
    """Parse ``param_str`` (YAML) into config ``cls``; one ConfigError lists every problem."""
    return build(cls, parse_yaml(param_str), where=where, elsewhere=elsewhere)


def _message(where: str, problems: Iterable[Problem]) -> str:
    problems = list(problems)
    noun = "problem" if len(problems) == 1 else "problems"
    lines = "\n".join(f"  - {p}" for p in problems)
    return f"{where} has {len(problems)} {noun}:\n{lines}"


def describe(cls: type) -> list[tuple[str, str, str, str, str]]:
    """(key, kind, default, doc, caffe) of every option of ``cls``: the README's tables."""
    rows = []
    for field in dataclasses.fields(cls):
        if field.init:
            default = "required" if field.default is REQUIRED else repr(field.default)
            meta = field.metadata
            rows.append((field.name, meta["kind"].name, default, meta["doc"], meta["caffe"]))
    return rows


def markdown_table(cls: type, without: type | None = None) -> str:
    """The README's table of ``cls``'s keys (leaving out those of the base class ``without``)."""
    inherited = {f.name: f for f in dataclasses.fields(without)} if without else {}
    # A key the class redefines (another default or meaning) is listed again.
    skip = {f.name for f in dataclasses.fields(cls) if inherited.get(f.name) is f}
    lines = ["| key | type | default | meaning | Caffe |", "|---|---|---|---|---|"]
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for key, kind, _, doc, caffe in describe(cls):
        if key not in skip:
            lines.append(f"| `{key}` | {kind} | {_yaml_default(defaults[key])} | {doc} | "
                         f"{caffe or '-'} |")
    return "\n".join(lines)


def _yaml_default(value: Any) -> str:
    """A default as it would be written in param_str."""
    if value is REQUIRED:
        return "**required**"
    if value is None:
        return "-"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return f"`[{', '.join(map(str, value))}]`"
    return f'`{value}`' if value != "" else '`""`'

