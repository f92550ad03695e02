"""Integer arrays coded for the statistics (pure numpy, no Django): dense codes and id lookups.

Database ids are non-negative integers of a modest range, so both run in O(N + range) through a
direct table, where sorting (np.unique, np.searchsorted) would cost O(N log N); other values sort.
"""

from __future__ import annotations

import numpy as np


def _direct(*arrays: np.ndarray, n: int) -> bool:
    """Whether one table indexed by the values is small enough (every value a non-negative integer)."""
    if any(a.dtype.kind not in "iu" for a in arrays):
        return False
    lo = min(int(a.min()) for a in arrays if a.size)
    hi = max(int(a.max()) for a in arrays if a.size)
    return lo >= 0 and hi < max(8 * n, 1 << 20)


def dense_codes(values) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, each value's index into them): np.unique(values, return_inverse=True),
    in O(N + range) by a presence table when the values are non-negative integers of a modest range
    (database ids, codes), else by sorting."""
    v = np.asarray(values)
    if v.size == 0:
        return v.astype(np.int64), np.zeros(0, dtype=np.int64)
    if _direct(v, n=v.size):
        present = np.zeros(int(v.max()) + 1, dtype=bool)
        present[v] = True
        code = np.cumsum(present, dtype=np.int64) - 1
        return np.flatnonzero(present).astype(v.dtype, copy=False), code[v]
    uniq, inv = np.unique(v, return_inverse=True)
    return uniq, inv.reshape(-1)


def lookup(keys: np.ndarray, table_keys: np.ndarray, table_values: np.ndarray, default: int = 0) -> np.ndarray:
    """table_values[i] where table_keys[i] == key, for every key (``default`` where absent), as int64."""
    keys = np.asarray(keys)
    table_keys = np.asarray(table_keys)
    if table_keys.size == 0 or keys.size == 0:
        return np.full(keys.shape, default, dtype=np.int64)
    if _direct(keys, table_keys, n=keys.size):
        table = np.full(int(max(keys.max(), table_keys.max())) + 1, default, dtype=np.int64)
        table[table_keys] = table_values
        return table[keys]
    order = np.argsort(table_keys)
    sk, sv = table_keys[order], np.asarray(table_values)[order]
    pos = np.clip(np.searchsorted(sk, keys), 0, sk.size - 1)
    return np.where(sk[pos] == keys, sv[pos], default).astype(np.int64)


def positions(values: np.ndarray, ids) -> np.ndarray:
    """Position of each value in ``ids`` (every value must be there)."""
    ids_arr = np.asarray(ids, dtype=np.int64)
    return lookup(values, ids_arr, np.arange(ids_arr.size, dtype=np.int64))
