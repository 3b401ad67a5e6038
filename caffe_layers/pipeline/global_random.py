"""The global ``random`` and ``numpy.random`` generators, seeded for the user's code.

keras-style classes draw from the legacy global generators: ``np.random.shuffle(self.indexes)``
in ``on_epoch_end``, ``np.random.rand() < 0.5`` to flip an image. Seeding both from
``(seed, event, epoch, index)`` just before such a call makes it a function of those numbers,
whichever process runs it, so every copy of a Sequence is in the same state and a batch is the
same for any number of workers.

In a worker nothing else draws from these generators, so seeding is all it takes (about 35 us).
In the layer's own process (setup, ``workers: 0``) they belong to the user and to Caffe's other
Python layers: there a :class:`GlobalRandom` is *isolated*: it saves the process's state first and
puts it back afterwards (about 150 us), so the layer never changes what other code draws.
"""

from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np

from caffe_layers.sampling import LEGACY_STREAM

# The event word of the seed: what the user's code is called for.
CONSTRUCT = 0  # Class(**kwargs)
EPOCH_BEGIN = 1  # on_epoch_begin() of epoch e
EPOCH_END = 2  # on_epoch_end() at the end of epoch e
GETITEM = 3  # __getitem__(index) in epoch e
GENERATOR_PASS = 4  # a generator function, one pass (until StopIteration) of one worker


def _seed_words(seed: int, words: tuple) -> np.ndarray:
    entropy = (int(seed), LEGACY_STREAM) + tuple(int(w) for w in words)
    return np.random.SeedSequence(entropy).generate_state(4)


class GlobalRandom:
    """A private stream of the global generators, from ``(seed, *words)``.

    ``with state.active():`` runs user code on it. The first activation seeds the generators; a
    later one continues where the previous left off (a generator drawing across ``next`` calls).
    ``isolated``: keep the private state aside between activations and restore the process's own.
    """

    def __init__(self, seed: int, *words: int, isolated: bool) -> None:
        self._words = _seed_words(seed, words)
        self.isolated = isolated
        self._state: tuple | None = None
        self._seeded = False

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        outer = _capture() if self.isolated else None
        if not self._seeded:
            np.random.seed(self._words)
            random.seed(int.from_bytes(self._words.tobytes(), "little"))
            self._seeded = True
        elif self._state is not None:
            _restore(self._state)
        try:
            yield
        finally:
            if outer is not None:
                self._state = _capture()
                _restore(outer)


def seeded(seed: int, *words: int, isolated: bool) -> contextlib.AbstractContextManager:
    """One call's worth of the global generators, freshly seeded from ``(seed, *words)``."""
    return GlobalRandom(seed, *words, isolated=isolated).active()


def _capture() -> tuple:
    return random.getstate(), np.random.get_state()


def _restore(state: tuple) -> None:
    random.setstate(state[0])
    np.random.set_state(state[1])
