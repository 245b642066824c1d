"""Merging observations into a tattoo: idempotent, order-independent, never backwards."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from shared.domain.tattoo import ImageTattoo, TattooStatus, merge

NOW = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
VERSION_ID = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.1"


def building() -> ImageTattoo:
    return ImageTattoo(gallery="g", image="i", version="1.0.1", version_id=VERSION_ID, status=TattooStatus.BUILDING,
                       tags={"a": "1"})  # fmt: skip


def built() -> ImageTattoo:
    return ImageTattoo(gallery="g", image="i", version="1.0.1", version_id=VERSION_ID, status=TattooStatus.BUILT,
                       run_id="t@1", template_name="t")  # fmt: skip


def failed() -> ImageTattoo:
    return ImageTattoo(gallery="g", image="i", version="1.0.1", version_id=VERSION_ID,
                       status=TattooStatus.BUILD_FAILED, reason="boom", run_id="t@1")  # fmt: skip


def test_first_observation_is_stored_with_timestamps() -> None:
    stored = merge(None, built(), NOW)
    assert stored is not None
    assert stored.first_recorded == NOW
    assert stored.last_updated == NOW


def test_duplicate_observation_changes_nothing() -> None:
    stored = merge(None, built(), NOW)
    assert merge(stored, built(), NOW) is None


def test_late_building_observation_does_not_move_built_backwards_but_fills_gaps() -> None:
    stored = merge(None, built(), NOW)
    merged = merge(stored, building(), NOW)
    assert merged is not None
    assert merged.status is TattooStatus.BUILT
    assert merged.tags == {"a": "1"}


def test_a_final_verdict_is_never_flipped_by_another_final_one() -> None:
    stored = merge(None, failed(), NOW)
    merged = merge(stored, built(), NOW)
    assert merged is None or merged.status is TattooStatus.BUILD_FAILED


def test_every_delivery_order_converges_on_the_same_tattoo() -> None:
    results = set()
    for order in itertools.permutations([building(), built(), built(), building()]):
        state = None
        for observation in order:
            state = merge(state, observation, NOW) or state
        assert state is not None
        results.add(state.model_dump_json(exclude={"first_recorded", "last_updated"}))
    assert len(results) == 1
