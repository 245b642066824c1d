"""`make demo`, the audit trail: every record the stories left, as GET /api/audit returns them,
a signed digest, an offline verification of a downloaded copy, and a tampered copy caught."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobServiceClient

from shared.adapters.signing import LocalKeySigner
from shared.local.azurite import REPO_ROOT
from shared.local.demo_support import Api, DemoFailed, clip, expect, print_table, step

# At least this many records of each action: what the build, validation and approval stories did.
EXPECTED_RECORDS = {
    "image.build.observed": 1,
    "image.validation.started": 3,
    "image.build.completed": 4,
    "image.build.failed": 1,
    "input.rejected": 1,
    "image.scan.submitted": 4,
    "image.boot_test.completed": 3,
    "image.validation.passed": 2,
    "image.validation.failed": 2,
    "change.requested": 3,
    "change.remediation_requested": 1,
    "change.escalated": 1,
    "change.approved": 2,
    "change.released": 1,
    "auth.denied": 3,
}


def run_audit_story(api: Api, connection: str, key_file: Path) -> None:
    step("The audit trail, as GET /api/audit returns it")
    records = api.audit(EXPECTED_RECORDS)
    rows = []
    for record in sorted(records, key=lambda r: r["timestamp"]):
        note = record.get("reason") if record["outcome"] != "success" else record.get("change_id")
        rows.append((record["timestamp"][11:23], f"{record['shard']:>2}#{record['sequence']:<3}", record["action"],
                     record["outcome"], clip(_short_subject(record.get("subject")), 40), _who(record["actor"]),
                     _who(record.get("initiator")), clip(note or "", 44)))  # fmt: skip
    print_table(("TIME", "SHARD#", "ACTION", "OUTCOME", "SUBJECT", "ACTOR", "INITIATOR", "CHANGE / REASON"), rows)

    step("The seal_audit_digest timer signs a digest of the archive")
    api.timer("seal_audit_digest")
    copy = key_file.parent / "audit-copy"
    count = _download_archive(connection, copy)
    public_key = key_file.parent / "audit-public-key.pem"
    public_key.write_bytes(LocalKeySigner.from_file(key_file, create=False).public_key_pem())
    print(f"  downloaded {count} blobs of the audit container to a local copy, as `az storage blob download-batch`")

    step("A log consumer verifies the copy offline: python -m shared audit verify --dir ...")
    clean = _verify(copy, public_key)
    expect(clean == 0, "the untouched archive verifies")

    step("Someone edits one record in a copy (the builder's name): the verifier catches it")
    tampered = key_file.parent / "audit-tampered"
    shutil.copytree(copy, tampered)
    segment = _tamper(tampered)
    print(f"  changed 'ada.builder' to 'eve.builder' in {segment.relative_to(tampered)}")
    caught = _verify(tampered, public_key)
    expect(caught == 1, "the tampered archive fails verification")


def _who(party: dict[str, Any] | None) -> str:
    """A short name: the app, a person's name, a UPN's user part, or the start of an object id."""
    if not party:
        return "-"
    if party.get("kind") == "system":
        return "app"
    name = str(party.get("display_name") or party.get("id") or "?")
    return clip(name.split("@", 1)[0], 16)


def _short_subject(subject: str | None) -> str:
    """`gallery/image/version` of a version id, `imageTemplates/name` of a template id."""
    tail = (subject or "").rsplit("/providers/", 1)[-1]
    for long, brief in (("Microsoft.Compute/galleries/", ""), ("/images/", "/"), ("/versions/", "/"),
                        ("Microsoft.VirtualMachineImages/", "")):  # fmt: skip
        tail = tail.replace(long, brief)
    return tail


def _download_archive(connection: str, target: Path) -> int:
    container = BlobServiceClient.from_connection_string(connection).get_container_client("audit")
    count = 0
    for blob in container.list_blobs():
        path = target / blob.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(container.download_blob(blob.name).readall())
        count += 1
    return count


def _verify(archive: Path, public_key: Path) -> int:
    command = [sys.executable, "-m", "shared", "audit", "verify", "--dir", str(archive),
               "--public-key", str(public_key), "--no-progress"]  # fmt: skip
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    for line in (result.stdout + result.stderr).strip().splitlines():
        print(f"  | {line}")
    print(f"  exit status {result.returncode}")
    return result.returncode


def _tamper(archive: Path) -> Path:
    for segment in sorted(archive.rglob("*.jsonl")):
        data = segment.read_bytes()
        if b"ada.builder" in data:
            segment.write_bytes(data.replace(b"ada.builder", b"eve.builder", 1))
            return segment
    raise DemoFailed("no audit record names ada.builder")
