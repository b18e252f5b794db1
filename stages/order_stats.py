"""Exact order statistics (the k-th smallest value) of data spread over partitions, without gathering it.

The Dask engine needs values that depend on every row at once: the cut of a split (the k-th smallest row hash
of each class, the k-th oldest time), and featurize's clip quantiles and medians. Sorting the whole column on one
machine is what the engine exists to avoid; an approximate quantile would make the Dask featurizer.json differ
from the pandas one. So the values are found exactly, by radix selection:
  1. every partition counts its values by their top DIGIT_BITS bits (a small histogram);
  2. the summed histograms say which bucket holds the k-th value and its rank inside the bucket;
  3. the partitions count the next bits within that bucket, and so on, until the bucket is small (GATHER values
     in all): then its values are gathered and sorted, and the k-th is read off.
A pass reads the partitions once; uniform keys (hashes) need two, measurements a few.

Values are compared as 64-bit unsigned keys that sort like the values: float_keys and int_keys make them,
float_values and int_values turn them back. Pure numpy: `run(task, requests)` is given by the caller (a Dask
map over partitions, or a plain loop in tests) and returns task(part, requests) for every partition.
"""
import numpy as np

DIGIT_BITS = 12
BINS = 1 << DIGIT_BITS
GATHER = 200_000  # a bucket with at most this many values (in all partitions) is gathered and sorted
SIGN = np.uint64(1 << 63)


def float_keys(x):
    """float64 values (no NaN) as uint64 keys in the same order; -0.0 sorts as 0.0."""
    x = np.add(np.asarray(x, dtype=np.float64), 0.0)  # -0.0 + 0.0 is 0.0
    bits = x.view(np.uint64)
    return np.where(bits & SIGN, ~bits, bits | SIGN)


def float_values(keys):
    keys = np.asarray(keys, dtype=np.uint64)
    return np.where(keys & SIGN, keys & ~SIGN, ~keys).view(np.float64)


def int_keys(x):
    return np.asarray(x, dtype=np.int64).view(np.uint64) ^ SIGN


def int_values(keys):
    return (np.asarray(keys, dtype=np.uint64) ^ SIGN).view(np.int64)


def part_task(keys, requests):
    """One partition's answer to one pass. keys: {name: uint64 array}; requests: [(name, prefix, shift, gather)]:
    the values whose bits above `shift` equal `prefix` (shift 64: all values); for each, their sorted values
    (gather) or a histogram of their next DIGIT_BITS bits."""
    answers = []
    for name, prefix, shift, gather in requests:
        values = keys[name]
        if shift < 64:
            values = values[(values >> np.uint64(shift)) == np.uint64(prefix)]
        if gather:
            answers.append(np.sort(values))
        else:
            bits = min(DIGIT_BITS, shift)
            digits = (values >> np.uint64(shift - bits)) & np.uint64((1 << bits) - 1)
            answers.append(np.bincount(digits.astype(np.int64), minlength=BINS).astype(np.int64))
    return answers


def order_statistics(run, wanted, counts):
    """{(name, k): the k-th smallest key (0-based) of `name`} for each (name, k) of `wanted`.
    counts: {name: number of values}; run(requests) -> one part_task answer list per partition."""
    # Each search: [name, k, prefix, shift, rank within the bucket, values in the bucket]
    searches = [[name, k, 0, 64, k, counts[name]] for name, k in wanted]
    for name, k in wanted:
        if not 0 <= k < counts[name]:
            raise ValueError(f"rank {k} of {name!r} is outside its {counts[name]} values")
    found = {}
    while searches:
        requests = [(name, prefix, shift, size <= GATHER or shift == 0) for name, _, prefix, shift, _, size in searches]
        # One request per distinct bucket: ranks that share one are answered by the same histogram.
        unique = sorted(set(requests))
        answers = run(unique)
        merged = {}
        for i, request in enumerate(unique):
            parts = [answer[i] for answer in answers]
            merged[request] = np.concatenate(parts) if request[3] else np.sum(parts, axis=0)
        pending = []
        for search, request in zip(searches, requests):
            name, k, prefix, shift, rank, _ = search
            result = merged[request]
            if request[3]:  # gathered: the values of the bucket, in order
                found[(name, k)] = np.sort(result)[rank] if shift else np.uint64(prefix)
                continue
            cumulative = np.cumsum(result)
            digit = int(np.searchsorted(cumulative, rank, side="right"))
            rank -= int(cumulative[digit - 1]) if digit else 0
            bits = min(DIGIT_BITS, shift)
            prefix = (prefix << bits) | digit if shift < 64 else digit
            pending.append([name, k, prefix, shift - bits, rank, int(result[digit])])
        searches = pending
    return found


def quantile_ranks(n, q):
    """The ranks numpy's default (linear) quantile q of n values interpolates between: (lo, hi, weight of hi),
    so that the quantile is value(lo) * (1 - weight) + value(hi) * weight."""
    position = (n - 1) * q
    lo = int(np.floor(position))
    return lo, min(lo + 1, n - 1), position - lo
