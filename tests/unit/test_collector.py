"""The worker's garbage-collector settings, and the benchmark's undo of them."""

from __future__ import annotations

import gc

from service import collector


def test_tuned_sets_the_young_generation_freezes_and_undoes_both() -> None:
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    kept = [object() for _ in range(10)]  # something alive to freeze
    with collector.tuned():
        assert gc.get_threshold() == (collector.YOUNG_GENERATION, *before[1:])
        assert gc.get_freeze_count() > frozen_before
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    assert kept


def test_tune_keeps_the_older_generations_as_they_are() -> None:
    before = gc.get_threshold()
    try:
        collector.tune()
        assert gc.get_threshold() == (collector.YOUNG_GENERATION, *before[1:])
    finally:
        gc.set_threshold(*before)
