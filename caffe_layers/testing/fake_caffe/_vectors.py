"""C++ ``std::vector`` wrappers as Boost.Python's ``vector_indexing_suite`` shows them to Python.

They are sequences (``len``, indexing with negative indices, slicing to the same type, ``in``) but
not lists: equality is identity, as for any Boost.Python object, so ``blob.shape == (2, 3)`` is
False and ``tuple(blob.shape) == (2, 3)`` is True. ``RawBlobVec`` (a layer's ``top``/``bottom``)
cannot even be iterated: Boost.Python has no by-value converter for a raw ``Blob*``.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator


class _StdVector:
    """A copy of one C++ vector; the subclass name is the Boost.Python class name."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self._items = list(items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return type(self)(self._items[index])
        return self._items[self._position(index)]

    def __setitem__(self, index: Any, value: Any) -> None:
        self._items[self._position(index)] = value

    def __contains__(self, value: object) -> bool:
        return value in self._items

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def append(self, value: Any) -> None:
        self._items.append(value)

    def extend(self, values: Iterable[Any]) -> None:
        self._items.extend(values)

    def _position(self, index: Any) -> int:
        if not isinstance(index, int):
            raise TypeError("Invalid index type")
        position = index + len(self._items) if index < 0 else index
        if not 0 <= position < len(self._items):
            raise IndexError("Index out of range")
        return position

    def __repr__(self) -> str:
        # Real pycaffe shows <caffe._caffe.IntVec object at 0x...>; the contents help more.
        return f"{type(self).__name__}({self._items!r})"


class IntVec(_StdVector):
    """``vector<int>``: ``Blob.shape``, a net's ``_inputs``/``_outputs``, ``_top_ids(i)``."""

    __slots__ = ()


class StringVec(_StdVector):
    """``vector<string>``: ``Net._layer_names``, ``Net._blob_names``, ``layer_type_list()``."""

    __slots__ = ()


class BoolVec(_StdVector):
    """``vector<bool>``: the ``propagate_down`` argument of ``backward``."""

    __slots__ = ()


class RawBlobVec(_StdVector):
    """``vector<Blob*>``: a layer's ``top``/``bottom``; not iterable (use ``range(len(top))``)."""

    __slots__ = ()
    __iter__ = None  # type: ignore[assignment]  # `for b in top` raises TypeError, as in pycaffe
