"""One process's copy of the user's keras Sequence, kept in the state keras would have it in.

keras builds a Sequence once, calls ``on_epoch_end()`` after every epoch (keras 3's ``PyDataset``
also ``on_epoch_begin()`` before each) and ``__getitem__(idx)`` for the batches in between. Such
classes reshuffle in ``on_epoch_end`` with ``np.random.shuffle`` and may augment with
``np.random`` in ``__getitem__``. Here each worker has its own copy, so a copy *replays* that
history: to fill a batch of epoch ``e`` it crosses every epoch boundary it has not crossed yet,
each call made on the global ``random``/``numpy.random`` seeded from ``(seed, event, epoch)``
(:mod:`~caffe_layers.pipeline.global_random`). Every copy, in any process and with any number of
workers, is then in the same state at the same epoch. A copy asked for an epoch it has passed (a
respawned worker's batches, the layer's own copy) is rebuilt from scratch and replayed.
"""

from __future__ import annotations

from typing import Any

from caffe_layers.errors import ConfigError, DataError
from caffe_layers.pipeline.global_random import (
    CONSTRUCT,
    EPOCH_BEGIN,
    EPOCH_END,
    GETITEM,
    seeded,
)
from caffe_layers.pipeline.user_code import close_if_closable, import_object


def _has_length(sequence: Any) -> bool:
    return callable(getattr(type(sequence), "__len__", None))


def check_sequence(sequence: Any, spec: str) -> None:
    """ConfigError unless ``sequence`` has what keras needs: ``__getitem__`` and a length."""
    missing = [] if callable(getattr(type(sequence), "__getitem__", None)) else ["__getitem__"]
    if not _has_length(sequence) and not hasattr(sequence, "num_batches"):
        missing.append("__len__")
    if missing:
        raise ConfigError(f"sequence: '{spec}' built a {type(sequence).__name__} with no "
                          f"{' and no '.join(missing)}; a keras Sequence needs __len__ (batches "
                          f"per epoch) and __getitem__(idx) returning one batch (X, y)")


def batch_count(sequence: Any, spec: str) -> int:
    """Batches per epoch: ``len()``, or keras 3 PyDataset's ``num_batches``."""
    if _has_length(sequence):
        count = len(sequence)
    else:
        count = getattr(sequence, "num_batches", None)
        if not isinstance(count, int):
            raise ConfigError(f"sequence: '{spec}' has no __len__ and its num_batches is "
                              f"{count!r}; an endless PyDataset is a generator: use generator:")
    if count < 1:
        raise DataError(f"sequence '{spec}': it has {count} batches per epoch; it needs at "
                        f"least 1")
    return int(count)


class SequenceCopy:
    """The user's Sequence built in this process and brought to the epoch asked for.

    ``length`` is the batch count the layer's own copy had at setup (None for that copy): a
    copy whose ``len()`` differs, at build or after an epoch boundary, is an error.
    ``isolated``: this is the layer's own process (see :class:`GlobalRandom`).
    """

    def __init__(self, spec: str, kwargs: dict, seed: int, *, isolated: bool,
                 length: int | None = None) -> None:
        self.spec = spec
        self.kwargs = kwargs
        self.seed = seed
        self.isolated = isolated
        self.length = length
        self.instance: Any = None
        self.epoch = 0

    def batch(self, index: int, epoch: int) -> Any:
        """``__getitem__(index)`` in ``epoch``, on global generators seeded from both."""
        self.advance_to(epoch)
        with seeded(self.seed, GETITEM, epoch, index, isolated=self.isolated):
            try:
                return self.instance[index]
            except Exception as exc:
                raise DataError(f"sequence '{self.spec}' batch index {index} (epoch {epoch}): "
                                f"__getitem__({index}) raised {type(exc).__name__}: {exc}") \
                    from exc

    def advance_to(self, epoch: int) -> None:
        if self.instance is None or epoch < self.epoch:
            self.build()
        while self.epoch < epoch:
            self._call("on_epoch_end", EPOCH_END, self.epoch)
            self.epoch += 1
            self._call("on_epoch_begin", EPOCH_BEGIN, self.epoch)
            self._check_length(f"after on_epoch_end of epoch {self.epoch - 1}")

    def build(self) -> None:
        """A fresh instance at the start of epoch 0."""
        self.close()
        cls = import_object(self.spec, "sequence")
        with seeded(self.seed, CONSTRUCT, isolated=self.isolated):
            self.instance = cls(**self.kwargs)
        check_sequence(self.instance, self.spec)
        self.epoch = 0
        self._call("on_epoch_begin", EPOCH_BEGIN, 0)
        self._check_length("when built")

    def _call(self, name: str, event: int, epoch: int) -> None:
        method = getattr(self.instance, name, None)
        if not callable(method):
            return
        with seeded(self.seed, event, epoch, isolated=self.isolated):
            try:
                method()
            except Exception as exc:
                raise DataError(f"sequence '{self.spec}' {name}() of epoch {epoch} raised "
                                f"{type(exc).__name__}: {exc}") from exc

    def _check_length(self, when: str) -> None:
        count = batch_count(self.instance, self.spec)
        if self.length is None:
            self.length = count
        elif count != self.length:
            raise DataError(f"sequence '{self.spec}': len() is {count} {when}, but "
                            f"{self.length} at setup; the batches per epoch must not change")

    def close(self) -> None:
        if self.instance is not None:
            close_if_closable(self.instance)
            self.instance = None
