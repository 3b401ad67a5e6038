"""Seeded bijections of ``range(n)`` evaluated per element, in numpy, in constant memory.

An epoch order used to be a materialised permutation: 8 bytes a sample, 800 MB per epoch at
100M samples, in every rank and worker. Here position ``p`` of the order is computed from
``(key, p)`` alone: a Feistel network permutes ``range(a * b)`` (``a = ceil(sqrt(n))``,
``b = ceil(n / a)``, so ``a * b - n < a``), and *cycle walking* (apply it again while the
result is ``>= n``) restricts it to a permutation of ``range(n)`` (Black and Rogaway, "Ciphers with
arbitrary finite domains", 2002). A walk step is needed with probability below ``1 / b``, about
``1 / sqrt(n)``.

The state is ``left * b + right``; a round maps it to ``right * a + (left + F(right)) mod a`` (the
two sides swap sizes every round, as in Black and Rogaway's generalised Feistel), for
:data:`ROUNDS` rounds. ``F`` is the SplitMix64 finaliser of ``right`` xored with a 64-bit round
key. Luby and Rackoff showed that 4 rounds of a pseudo-random function already give a
pseudo-random permutation; 6 leave margin for the simple round function. The shuffle's statistics
against uniform permutations are checked in ``tests/test_bijections.py``.

Domains of at most :data:`SORT_LIMIT` elements are too small for a Feistel network to mix well
(with 6 rounds, 5 elements give positions measurably far from uniform): there each element's
permutation is the sort order of ``n`` keyed hashes, exactly uniform up to the hash.

Keys are ``uint64`` arrays of shape ``(ROUNDS,)`` (one bijection for every element) or
``(ROUNDS, len(x))`` (one bijection per element: e.g. one per shuffle window). All arithmetic is
on ``uint64`` arrays, where numpy wraps around silently (it warns only on scalars).
"""

from __future__ import annotations

import math

import numpy as np

ROUNDS = 6
SORT_LIMIT = 32  # domains up to this size are shuffled by sorting hashes (see _sorted)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SHIFT_30, _SHIFT_27, _SHIFT_31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _mix(z: np.ndarray) -> np.ndarray:
    """:func:`mix64` in place."""
    z ^= z >> _SHIFT_30
    z *= _MIX_1
    z ^= z >> _SHIFT_27
    z *= _MIX_2
    z ^= z >> _SHIFT_31
    return z


def mix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection of ``uint64`` that spreads every bit over all 64."""
    return _mix(np.array(values, dtype=np.uint64, copy=True, ndmin=1))


def derive_keys(keys: np.ndarray, words: np.ndarray) -> np.ndarray:
    """One key set per word, ``(ROUNDS, len(words))``: independent bijections from one key set.

    E.g. the window shuffles of an epoch: ``derive_keys(epoch_keys, window_numbers)``.
    """
    spread = mix64(np.asarray(words, dtype=np.int64).astype(np.uint64) * _GOLDEN + _GOLDEN)
    return mix64(np.asarray(keys, np.uint64)[:, None] ^ spread[None, :])


def _sides(n: int) -> tuple:
    """``(a, b)``: the state is ``left * b + right`` with ``left < a``, ``right < b``; a*b >= n."""
    a = max(2, math.isqrt(int(n) - 1) + 1)
    return a, max(2, -(-int(n) // a))


def _round_keys(keys: np.ndarray, subset: np.ndarray | None) -> np.ndarray:
    keys = np.asarray(keys, dtype=np.uint64)
    if keys.ndim == 2 and subset is not None:
        return keys[:, subset]
    return keys


def _f(right: np.ndarray, key, modulus: np.uint64) -> np.ndarray:
    """The round function: ``right`` hashed with the round key, reduced to ``range(modulus)``."""
    hashed = _mix(right ^ key)
    hashed %= modulus
    return hashed


def _encrypt(x: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
    """The Feistel permutation of ``range(a * b)``, without cycle walking."""
    size_left, size_right = (np.uint64(side) for side in _sides(n))
    state = x.astype(np.uint64)
    for r in range(ROUNDS):
        left, state = np.divmod(state, size_right)  # state is now the right side
        left += _f(state, keys[r], size_left)
        left %= size_left
        state *= size_left
        state += left
        size_left, size_right = size_right, size_left
    return state


def _decrypt(y: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_encrypt`: the rounds undone in reverse order."""
    size_left, size_right = (np.uint64(side) for side in _sides(n))
    if ROUNDS % 2:
        size_left, size_right = size_right, size_left
    state = y.astype(np.uint64)
    for r in reversed(range(ROUNDS)):
        size_left, size_right = size_right, size_left  # the sizes before round r
        right, left = np.divmod(state, size_left)
        left += size_left - _f(right, keys[r], size_left)
        left %= size_left
        left *= size_right
        left += right
        state = left
    return state


def _walk(step, x: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
    """Apply ``step`` once, then again to every element still ``>= n`` (cycle walking)."""
    out = step(x, n, keys)
    pending = np.flatnonzero(out >= np.uint64(n))
    while pending.size:
        out[pending] = step(out[pending], n, _round_keys(keys, pending))
        still = out[pending] >= np.uint64(n)
        pending = pending[still]
    return out.astype(np.int64)


def _sorted(n: int, keys: np.ndarray) -> np.ndarray:
    """Small domains: row ``i`` is a permutation of ``range(n)`` from element ``i``'s keys: the
    order of ``n`` keyed hashes (exactly uniform if the hash is). ``(1, n)`` for shared keys."""
    k0, k1 = keys[0], keys[1]
    if keys.ndim == 1:
        k0, k1 = k0[None], k1[None]
    spread = mix64(np.arange(n, dtype=np.uint64)[None, :] ^ k1[:, None])
    return np.argsort(mix64(spread ^ k0[:, None]), axis=1, kind="stable")


def _rows(keys: np.ndarray, count: int) -> np.ndarray:
    return np.zeros(count, np.intp) if keys.ndim == 1 else np.arange(count)


def _evaluate(values, n: int, keys: np.ndarray, inverse: bool) -> np.ndarray:
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    keys, n = np.asarray(keys, dtype=np.uint64), int(n)
    if n <= 1:
        return np.zeros_like(values)
    if n <= SORT_LIMIT:
        table = _sorted(n, keys)
        if inverse:
            table = np.argsort(table, axis=1, kind="stable")
        return table[_rows(keys, len(values)), values].astype(np.int64)
    return _walk(_decrypt if inverse else _encrypt, values, n, keys)


def permute(x, n: int, keys: np.ndarray) -> np.ndarray:
    """``sigma(x)`` for every element of ``x`` in ``range(n)``: a bijection of ``range(n)``."""
    return _evaluate(x, n, keys, inverse=False)


def invert(y, n: int, keys: np.ndarray) -> np.ndarray:
    """``sigma^-1(y)``: the ``x`` with ``permute(x, n, keys) == y``."""
    return _evaluate(y, n, keys, inverse=True)
