"""`python -m shared audit verify` as a consumer runs it: a directory copy or the container, exit 0/1/2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from shared.local.azurite import REPO_ROOT
from tests.assets.audit_archive import BuiltArchive, build_archive


def run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared", "audit", "verify", "--no-progress", *arguments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltArchive:
    return build_archive(tmp_path_factory.mktemp("cli") / "archive", records=400, shards=2, hours=3, seed=5)


@pytest.fixture(scope="module")
def key_file(built: BuiltArchive, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("keys") / "audit-signing.pem"
    path.write_bytes(built.public_key)
    return str(path)


@pytest.fixture
def tampered(built: BuiltArchive, tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "copy"
    shutil.copytree(built.root, root)
    target = built.segments[1]
    lines = (root / target).read_bytes().split(b"\n")
    del lines[4]
    (root / target).write_bytes(b"\n".join(lines))
    return root, target


def test_a_clean_directory_copy_verifies_with_exit_0(built: BuiltArchive, key_file: str) -> None:
    result = run("--dir", str(built.root), "--public-key", key_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("VERIFIED")


def test_a_tampered_copy_fails_with_exit_1_naming_path_and_line(tampered: tuple[Path, str], key_file: str) -> None:
    root, target = tampered
    result = run("--dir", str(root), "--public-key", key_file)
    assert result.returncode == 1
    assert f"sequence_gap: {target}, line 5" in result.stdout


def test_the_json_report_lists_every_failure_with_its_location(tampered: tuple[Path, str], key_file: str) -> None:
    root, target = tampered
    report = json.loads(run("--dir", str(root), "--public-key", key_file, "--json", "--strict").stdout)
    assert report["ok"] is False and report["strict"] is True
    gap = next(f for f in report["failures"] if f["kind"] == "sequence_gap")
    assert (gap["path"], gap["line"]) == (target, 5)
    assert gap["hint"]


@pytest.fixture
def container(azurite: str, unique_name: str, built: BuiltArchive) -> Iterator[ContainerClient]:
    client = BlobServiceClient.from_connection_string(azurite).get_container_client(unique_name)
    client.create_container()
    for file in built.root.rglob("*"):
        if file.is_file():
            client.upload_blob(file.relative_to(built.root).as_posix(), file.read_bytes())
    yield client
    client.delete_container()


def test_the_container_verifies_with_exit_0_and_a_tampered_blob_fails(
    azurite: str, container: ContainerClient, built: BuiltArchive, key_file: str
) -> None:
    arguments = ("--connection-string", azurite, "--container", container.container_name, "--public-key", key_file)
    clean = run(*arguments)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    path = built.digests[0]
    container.upload_blob(
        path, container.download_blob(path).readall().replace(b'"shard":0', b'"shard":1'), overwrite=True
    )
    tampered = run(*arguments)
    assert tampered.returncode == 1
    assert f"digest_signature_invalid: {path}" in tampered.stdout


@pytest.mark.parametrize(
    "arguments",
    [
        ("--dir", "/nonexistent/audit"),
        ("--dir", ".", "--container", "audit"),
        ("--dir", ".", "--from", "yesterday"),
        ("--dir", ".", "--from", "2026-11-02", "--to", "2026-11-01"),
        ("--dir", ".", "--public-key", "/nonexistent.pem"),
        ("--dir", ".", "--public-key", "README.md"),
    ],
)
def test_arguments_that_cannot_work_exit_2(arguments: tuple[str, ...], key_file: str) -> None:
    extra = () if "--public-key" in arguments else ("--public-key", key_file)
    result = run(*arguments, *extra)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error" in result.stderr


def test_a_missing_public_key_or_source_exits_2(key_file: str) -> None:
    assert run("--dir", ".").returncode == 2
    assert run("--public-key", key_file).returncode == 2


def test_a_container_that_does_not_exist_exits_2(azurite: str, unique_name: str, key_file: str) -> None:
    result = run("--connection-string", azurite, "--container", unique_name, "--public-key", key_file)
    assert result.returncode == 2
    assert "does not exist" in result.stderr
