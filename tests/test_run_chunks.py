"""``run_chunks``: the thread pool that hands general-network chunks out largest first."""

import threading

import numpy as np
import pytest

from meio.engine._numba import run_chunks


def _recorder():
    seen, lock = [], threading.Lock()

    def kernel(scale, begin, end):
        with lock:
            seen.append((int(begin), int(end), scale))

    return seen, kernel


@pytest.mark.parametrize("threads", [1, 3])
def test_every_chunk_runs_once_with_its_arguments(threads):
    offsets = np.array([0, 2, 3, 7, 8, 12], np.int64)
    work = np.array([5, 1, 9, 1, 4], np.int64)
    seen, kernel = _recorder()
    run_chunks(kernel, (7,), offsets, work, threads)
    assert sorted(seen) == [(0, 2, 7), (2, 3, 7), (3, 7, 7), (7, 8, 7), (8, 12, 7)]
    if threads == 1:
        assert [begin for begin, _, _ in seen] == [0, 2, 3, 7, 8]


def test_a_failing_chunk_fails_the_call():
    def kernel(begin, end):
        if begin == 3:
            raise ValueError("chunk 3:7")

    with pytest.raises(ValueError, match="chunk 3:7"):
        run_chunks(kernel, (), np.array([0, 3, 7, 9], np.int64), np.array([1, 5, 1]), 2)
