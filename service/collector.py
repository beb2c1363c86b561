"""Python's garbage collector, tuned for a worker that handles a fetch at a time.

A worker holds a hundred thousand long-lived objects and more (Faust, aiokafka, pydantic's
models, the kept sums, the asset pointers) and makes tens of thousands of short-lived
ones per fetch. With CPython's default thresholds (a young collection every 700
allocations) a fetch's objects are often still in use when a young collection runs, so
they are promoted, and full collections, each walking every long-lived object and the
entries of the large caches, run several times a second: 12 to 14 % of a worker's time in
the benchmark (run `20261128-002806-806d`, docs/benchmarks.md). Two changes:

1. `tune`: a young generation of 50,000 allocations, so that a fetch's objects die before
   a collection finds them alive (cycles among them are freed a little later).
2. `freeze`, once the worker has started: what exists then lives as long as the process,
   and full collections no longer walk it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_GENERATION = 50_000


def tune() -> None:
    """Collect the young generation every YOUNG_GENERATION allocations (older ones as
    CPython does)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, middle, old)


def freeze() -> None:
    """Keep every object alive now out of later collections."""
    gc.collect()
    gc.freeze()


@contextmanager
def tuned() -> Iterator[None]:
    """`tune` and `freeze` for a block of a process that goes on after it (the
    benchmark's ceiling), undone at its end."""
    before = gc.get_threshold()
    tune()
    freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
