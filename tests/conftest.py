"""Shared fixtures: one real Azurite for the whole run, unique names per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.local.azurite import Azurite


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Connection string of a running Azurite: `AZURITE_CONNECTION_STRING` if given, else one we start."""
    given = os.environ.get("AZURITE_CONNECTION_STRING")
    if given:
        yield given
        return
    location: Path = tmp_path_factory.mktemp("azurite")
    with Azurite(location, in_memory=True) as instance:
        yield instance.connection_string


@pytest.fixture
def unique_name() -> str:
    """A storage-safe name unique to this test (tables: alphanumeric, containers: lower case)."""
    return "t" + uuid.uuid4().hex[:16]
