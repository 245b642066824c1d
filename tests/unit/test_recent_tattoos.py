"""The intake's memory of its own last writes: bounded, least recently used out first."""

from __future__ import annotations

import pytest

from shared.domain.tattoo import ImageTattoo, TattooStatus
from shared.services.recent_tattoos import RecentTattoos

IMAGE_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/gal_staging/images/win11"


def tattoo(version: str) -> ImageTattoo:
    return ImageTattoo(
        gallery="gal_staging", image="win11", version=version, version_id=f"{IMAGE_ID}/versions/{version}",
        status=TattooStatus.BUILDING,
    )  # fmt: skip


def test_it_keeps_the_last_etag_written_per_tattoo() -> None:
    recent = RecentTattoos()
    recent.put(tattoo("1.0.0"), "etag-1")
    recent.put(tattoo("1.0.0"), "etag-2")
    found = recent.get(tattoo("1.0.0").key)
    assert found is not None and found[1] == "etag-2"
    assert len(recent) == 1


def test_the_least_recently_used_goes_first_when_full() -> None:
    recent = RecentTattoos(capacity=2)
    recent.put(tattoo("1.0.0"), "a")
    recent.put(tattoo("1.0.1"), "b")
    assert recent.get(tattoo("1.0.0").key) is not None  # used: 1.0.1 is now the oldest
    recent.put(tattoo("1.0.2"), "c")
    assert recent.get(tattoo("1.0.1").key) is None
    assert recent.get(tattoo("1.0.0").key) is not None and recent.get(tattoo("1.0.2").key) is not None


def test_forget_drops_a_row_and_tolerates_an_unknown_one() -> None:
    recent = RecentTattoos()
    recent.put(tattoo("1.0.0"), "a")
    recent.forget(tattoo("1.0.0").key)
    recent.forget(tattoo("9.9.9").key)
    assert recent.get(tattoo("1.0.0").key) is None


def test_a_capacity_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RecentTattoos(capacity=0)
