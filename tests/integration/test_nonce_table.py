"""Callback nonces on real Azurite: a nonce is accepted once, even under concurrent claims."""

from __future__ import annotations

import json
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from shared.adapters.nonce_table import TableNonceStore
from shared.domain.auth_failures import AuthFailure
from shared.domain.callbacks import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CallbackSystem,
    CallbackVerifier,
    sign_callback,
)
from shared.domain.identity import Role
from shared.errors import Unauthenticated

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
LATER = NOW + timedelta(minutes=6)


def store(connection: str, table: str) -> TableNonceStore:
    return TableNonceStore(TableServiceClient.from_connection_string(connection), table)


def test_a_nonce_is_claimed_once_and_a_second_use_is_refused(azurite: str, unique_name: str) -> None:
    nonces = store(azurite, unique_name)
    assert nonces.claim("servicenow", "n-0000000000000001", now=NOW, expires_at=LATER) is True
    assert nonces.claim("servicenow", "n-0000000000000001", now=NOW, expires_at=LATER) is False


def test_the_same_nonce_from_another_system_is_its_own(azurite: str, unique_name: str) -> None:
    nonces = store(azurite, unique_name)
    assert nonces.claim("servicenow", "n-0000000000000001", now=NOW, expires_at=LATER) is True
    assert nonces.claim("jira", "n-0000000000000001", now=NOW, expires_at=LATER) is True


def test_a_replayed_signed_callback_is_refused(azurite: str, unique_name: str) -> None:
    secret = b"servicenow-shared-secret-0123456789abcdef"
    verifier = CallbackVerifier(
        {"servicenow": CallbackSystem("servicenow", secret, frozenset({Role.APPROVER}))}, store(azurite, unique_name)
    )
    body = json.dumps({"changeId": "CHG0031337", "approver": "pat"}).encode()
    timestamp, nonce = str(int(NOW.timestamp())), "n-replay-000000000001"
    headers = {
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: sign_callback(secret, timestamp, nonce, body),
    }
    assert verifier.verify("servicenow", headers, body, NOW).identity.on_behalf_of == "pat"
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify("servicenow", headers, body, NOW + timedelta(seconds=30))
    assert caught.value.reason == AuthFailure.REPLAYED_NONCE


def test_concurrent_claims_of_one_nonce_from_threads_have_exactly_one_winner(azurite: str, unique_name: str) -> None:
    store(azurite, unique_name).table  # noqa: B018  (create the table before the race)
    barrier = threading.Barrier(16)

    def claim(_: int) -> bool:
        nonces = store(azurite, unique_name)  # each "instance" with its own client
        barrier.wait()
        return nonces.claim("servicenow", "n-race-00000000000001", now=NOW, expires_at=LATER)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(claim, range(16)))
    assert results.count(True) == 1


def _claim_in_process(connection: str, table: str, nonce: str, now: str, barrier: object, results: object) -> None:
    nonces = store(connection, table)
    barrier.wait()  # type: ignore[attr-defined]
    at = datetime.fromisoformat(now)
    results.put(nonces.claim("servicenow", nonce, now=at, expires_at=at + timedelta(minutes=6)))  # type: ignore[attr-defined]


def test_concurrent_claims_of_one_nonce_from_processes_have_exactly_one_winner(azurite: str, unique_name: str) -> None:
    store(azurite, unique_name).table  # noqa: B018
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(4), context.Queue()
    workers = [
        context.Process(
            target=_claim_in_process,
            args=(azurite, unique_name, "n-race-00000000000002", NOW.isoformat(), barrier, results),
        )
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    outcomes = [results.get(timeout=10) for _ in workers]
    assert outcomes.count(True) == 1


def test_an_expired_nonce_is_taken_over_by_exactly_one_of_concurrent_claimers(azurite: str, unique_name: str) -> None:
    nonces = store(azurite, unique_name)
    assert nonces.claim("servicenow", "n-expired-0000000001", now=NOW, expires_at=LATER)
    much_later = LATER + timedelta(minutes=1)
    barrier = threading.Barrier(8)

    def claim(_: int) -> bool:
        mine = store(azurite, unique_name)
        barrier.wait()
        return mine.claim(
            "servicenow", "n-expired-0000000001", now=much_later, expires_at=much_later + timedelta(minutes=6)
        )

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(claim, range(8)))
    assert results.count(True) == 1
    assert nonces.claim("servicenow", "n-expired-0000000001", now=much_later, expires_at=much_later) is False


def test_purge_deletes_only_expired_nonces(azurite: str, unique_name: str) -> None:
    nonces = store(azurite, unique_name)
    nonces.claim("servicenow", "n-old-00000000000001", now=NOW, expires_at=NOW + timedelta(minutes=1))
    nonces.claim("servicenow", "n-live-0000000000001", now=NOW, expires_at=NOW + timedelta(hours=1))
    assert nonces.purge_expired(NOW + timedelta(minutes=2)) == 1
    remaining = [entity["RowKey"] for entity in nonces.table.list_entities()]
    assert remaining == ["n-live-0000000000001"]
