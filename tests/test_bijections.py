"""The seeded bijections behind every shuffled order: bijective, invertible, and as random-looking
as a uniform permutation by the statistics of tests/shuffle_stats.py."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shuffle_stats import permutation_stats, position_tables

from caffe_layers import bijections
from caffe_layers.sampling import ShuffledOrder, epoch_keys

KEYS = st.lists(st.integers(0, 2 ** 64 - 1), min_size=bijections.ROUNDS,
                max_size=bijections.ROUNDS).map(lambda k: np.array(k, np.uint64))


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 3000), keys=KEYS)
def test_every_domain_is_permuted_and_inverted(n, keys):
    image = bijections.permute(np.arange(n), n, keys)
    assert np.array_equal(np.sort(image), np.arange(n))
    assert np.array_equal(bijections.invert(image, n, keys), np.arange(n))


@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 10 ** 15), keys=KEYS, data=st.data())
def test_huge_domains_stay_in_range_and_invert(n, keys, data):
    x = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=50)), np.int64)
    image = bijections.permute(x, n, keys)
    assert ((image >= 0) & (image < n)).all()
    assert np.array_equal(bijections.invert(image, n, keys), x)
    assert len(np.unique(image)) == len(np.unique(x))  # distinct stay distinct


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 200), count=st.integers(1, 40), keys=KEYS, seed=st.integers(0, 99))
def test_per_element_keys_give_each_element_its_own_bijection(n, count, keys, seed):
    rng = np.random.default_rng(seed)
    x, words = rng.integers(0, n, count), rng.integers(0, 5, count)
    per_element = bijections.derive_keys(keys, words)
    together = bijections.permute(x, n, per_element)
    alone = [bijections.permute(x[i:i + 1], n, per_element[:, i])[0] for i in range(count)]
    assert together.tolist() == alone
    assert np.array_equal(bijections.invert(together, n, per_element), x)


def test_different_keys_give_different_orders():
    n = 1000
    orders = {tuple(ShuffledOrder(n, seed)(epoch)) for seed in range(3) for epoch in range(3)}
    assert len(orders) == 9


@pytest.mark.parametrize("n", [3, 4, 5])
def test_small_domains_draw_every_permutation_uniformly(n):
    epochs = 200 * math.factorial(n)
    keys = np.stack([epoch_keys(0, epoch)[0] for epoch in range(epochs)], axis=1)
    x = np.tile(np.arange(n), epochs)
    perms = bijections.permute(x, n, np.repeat(keys, n, axis=1)).reshape(epochs, n)
    index = {perm: i for i, perm in enumerate(itertools.permutations(range(n)))}
    counts = np.bincount([index[tuple(p)] for p in perms.tolist()], minlength=len(index))
    expected = np.full(len(index), epochs / len(index))
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < len(index) + 5 * math.sqrt(2 * len(index)), counts


@pytest.mark.parametrize("n", [12, 33, 100])  # either side of SORT_LIMIT
def test_over_many_epochs_samples_and_pairs_land_uniformly(n):
    epochs = 30000
    keys = np.stack([epoch_keys(1, epoch)[0] for epoch in range(epochs)], axis=1)
    x = np.tile(np.arange(n), epochs)
    perms = bijections.permute(x, n, np.repeat(keys, n, axis=1)).reshape(epochs, n)
    where_p, pairs_p = position_tables(perms)
    assert where_p > 1e-3 and pairs_p > 1e-3


@pytest.mark.parametrize("n", [5000, 2 ** 20 + 7])
def test_an_epoch_looks_like_a_uniform_permutation(n):
    order = ShuffledOrder(n, 11)
    stats = permutation_stats(order(0), order(1))
    correlation = stats.pop("epoch correlation x sqrt(n)")
    assert abs(correlation) < 4, "consecutive epochs are correlated"
    assert min(stats.values()) > 1e-3, stats


def test_the_statistics_catch_weak_shuffles(monkeypatch):
    """The checks above have power: an affine map and a 1-round Feistel network fail them."""
    n = 2 ** 20 + 7
    affine = (np.arange(n) * 7919 + 13) % n
    assert min(list(permutation_stats(affine, affine).values())[:4]) < 1e-6
    monkeypatch.setattr(bijections, "ROUNDS", 1)
    weak = ShuffledOrder(n, 11)
    assert min(list(permutation_stats(weak(0), weak(1)).values())[:4]) < 1e-6
