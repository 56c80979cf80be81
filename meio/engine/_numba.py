"""One home for Numba options and thread control.

Every kernel in :mod:`meio.engine` is compiled with the decorators defined here, so caching,
fast-math and parallelism can be changed in one place. ``fastmath`` stays off: results must be
bit-for-bit reproducible whatever the number of threads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

JIT_OPTIONS = {"cache": True, "nogil": True, "fastmath": False}

#: Decorator for serial kernels (per-network work, helpers called from parallel kernels).
njit = numba.njit(**JIT_OPTIONS)

#: Decorator for small helpers of hot loops, inlined into their callers by Numba (no call cost).
njit_inline = numba.njit(inline="always", **JIT_OPTIONS)

#: Decorator for kernels that only index arrays they are given (no allocation, no array
#: copies, no array returned): compiled without Numba's reference-counting runtime (the
#: ``_nrt`` target option), so they neither increment nor decrement the reference count of
#: every array they receive.
#: Those counts are atomic operations, paid on every call and for every array of a tuple
#: argument (a namedtuple of 15 arrays costs 30 of them per call): they took about 80 % of
#: the local search of :mod:`meio.engine.gsm_local` (docs/gsm.md). The caller keeps the
#: arrays alive; a kernel that allocates fails to compile ("NRT required but not enabled").
njit_borrowed = numba.njit(_nrt=False, **JIT_OPTIONS)

#: Decorator for small helpers of :func:`njit_borrowed` kernels' hot loops, inlined into their
#: callers (a tuple argument is otherwise copied on every call).
njit_borrowed_inline = numba.njit(_nrt=False, inline="always", **JIT_OPTIONS)

#: Decorator for batch kernels that ``prange`` over independent networks.
njit_parallel = numba.njit(parallel=True, **JIT_OPTIONS)

prange = numba.prange

#: Threads Numba runs a parallel kernel on (set with :func:`numba_threads`).
get_num_threads = numba.get_num_threads


@contextlib.contextmanager
def numba_threads(count: int | None) -> Iterator[int]:
    """Run a block with Numba's thread count set to ``count`` (``None`` keeps the current one).

    The previous count is restored in ``finally`` so a Dask worker that shares the process with
    other tasks never keeps a changed setting. ``count`` is clipped to ``[1, NUMBA_NUM_THREADS]``.
    """
    previous = numba.get_num_threads()
    wanted = previous if count is None else max(1, min(int(count), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        numba.set_num_threads(previous)


def run_chunks(kernel: Callable[..., None], arguments: tuple, chunk_offsets: np.ndarray,
               chunk_work: np.ndarray, threads: int) -> None:
    """Call ``kernel(*arguments, begin, end)`` for every chunk ``begin:end`` of ``chunk_offsets``.

    On ``threads`` threads the chunks go out most ``chunk_work`` first, each to the first thread
    that is free (list scheduling, longest first: Graham 1969, *SIAM J. Appl. Math.*
    17(2):416-429). ``prange`` splits its range statically instead, so a thread whose share
    holds one slow network finished long after the others (measured on Willems' chains,
    docs/gsm.md). ``kernel`` must be a Numba kernel (compiled ``nogil``) writing only its
    chunk's outputs: the results then depend on neither the thread count nor the order. On one
    thread the chunks run in order on the calling thread.
    """
    n_chunks = len(chunk_offsets) - 1
    if threads <= 1 or n_chunks <= 1:
        for chunk in range(n_chunks):
            kernel(*arguments, chunk_offsets[chunk], chunk_offsets[chunk + 1])
        return
    order = np.argsort(-np.asarray(chunk_work), kind="stable")
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="meio-chunk")
    try:
        futures = [pool.submit(kernel, *arguments, chunk_offsets[chunk], chunk_offsets[chunk + 1])
                   for chunk in order]
        for future in futures:
            future.result()
    finally:
        # An error or an interrupt drops the chunks not started; running kernels cannot stop.
        pool.shutdown(wait=True, cancel_futures=True)
