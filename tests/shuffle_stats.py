"""Statistics comparing a shuffle with a uniform permutation (chi-square, no scipy).

``python tests/shuffle_stats.py`` prints them for ShuffledOrder and for numpy's permutation side
by side; tests/test_bijections.py asserts them.
"""

from __future__ import annotations

import math

import numpy as np

EDGES = np.linspace(0.0, 1.0, 51)


def chi2_p(observed: np.ndarray, expected: np.ndarray) -> float:
    """Upper-tail p-value of Pearson's chi-square (Wilson-Hilferty normal approximation)."""
    observed, expected = np.asarray(observed, float), np.asarray(expected, float)
    stat, dof = float(((observed - expected) ** 2 / expected).sum()), len(observed) - 1
    z = ((stat / dof) ** (1 / 3) - (1 - 2 / (9 * dof))) / math.sqrt(2 / (9 * dof))
    return 0.5 * math.erfc(z / math.sqrt(2))


def distance_p(a: np.ndarray, b: np.ndarray, n: int) -> float:
    """|a - b| / n against the distance of two independent uniform points (density 2(1 - d))."""
    distance = np.abs(a - b) / n
    expected = np.diff(1 - (1 - EDGES) ** 2) * len(distance)
    return chi2_p(np.histogram(distance, EDGES)[0], expected)


def permutation_stats(perm: np.ndarray, next_epoch: np.ndarray) -> dict:
    """p-values of the checks on one epoch's order (and the next epoch's, for correlation)."""
    n = len(perm)
    position = np.arange(n)
    cells = (position * 100 // n) * 100 + perm * 100 // n
    return {
        "displacement": distance_p(perm, position, n),  # where each sample moved
        "adjacent": distance_p(perm[1:], perm[:-1], n),  # consecutive positions
        "stride 512": distance_p(perm[512:], perm[:-512], n),  # one rank's consecutive samples
        "grid 100x100": chi2_p(np.bincount(cells, minlength=10000), np.full(10000, n / 10000)),
        "epoch correlation x sqrt(n)": float(np.corrcoef(perm, next_epoch)[0, 1] * math.sqrt(n)),
    }


def position_tables(perms: np.ndarray) -> tuple:
    """p-values over many epochs (rows of ``perms``): where sample 0.. lands, and the pair
    (position of sample 0, of sample 1)."""
    epochs, n = perms.shape
    where = np.stack([np.bincount(perms[:, i], minlength=n) for i in range(n)])
    pairs = np.bincount(perms[:, 0] * n + perms[:, 1], minlength=n * n)
    pairs = np.delete(pairs, np.arange(n) * (n + 1))  # a pair never has one position twice
    return (chi2_p(where.ravel(), np.full(n * n, epochs / n)),
            chi2_p(pairs, np.full(n * (n - 1), epochs / (n * (n - 1)))))


def main() -> None:
    from caffe_layers.sampling import ShuffledOrder

    for n in (5000, 2 ** 20, 1234567):
        order = ShuffledOrder(n, 7)
        rng = np.random.default_rng(7)
        rows = {"ShuffledOrder": permutation_stats(order(0), order(1)),
                "numpy permutation": permutation_stats(rng.permutation(n), rng.permutation(n))}
        for name, stats in rows.items():
            print(f"n={n:>8} {name:<18} " + "  ".join(f"{k} {v:.3f}" for k, v in stats.items()))


if __name__ == "__main__":
    main()
