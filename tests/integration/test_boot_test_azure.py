"""The Azure boot tester drives the real azure-mgmt-compute client against Compute-shaped HTTP.

What is under test: the VM it asks for (image, security profile, NIC in the subnet, everything
deleted with the VM, throw-away tags), the Run Command it sends, how each way a boot test ends
becomes a result, that a hanging operation cannot outlive the timeout, and that the VM is
always deleted.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.boot_test import (
    OUTPUT_LIMIT,
    RESULT_MARKER,
    AzureBootTester,
    boot_test_vm_name,
)
from shared.domain.evidence import BootTestOutcome, BootTestRequest
from shared.errors import InvalidInput, UpstreamError
from tests.assets.arm_server import Fault, StaticTokenCredential, arm_document, client_kwargs
from tests.assets.compute_server import ComputeServer, linux_output, run_linux_check_here, windows_output

VERSION = arm_document("gallery_image_versions.json")["value"][-1]
VERSION_ID = VERSION["id"]
SUBSCRIPTION = VERSION_ID.split("/")[2]
GROUP_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-boot-test"
SUBNET_ID = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-network/providers/Microsoft.Network"
    "/virtualNetworks/vnet-image-factory/subnets/snet-boot-test"
)
SUFFIX = "a1b2c3d4"
VM_NAME = boot_test_vm_name(VERSION_ID, SUFFIX)
VM_PATH = f"{GROUP_ID}/providers/Microsoft.Compute/virtualMachines/{VM_NAME}"
NOW = datetime(2024, 7, 20, 10, 0, tzinfo=UTC)
FSLOGIX = "HKLM:\\SOFTWARE\\FSLogix\\Profiles\\Enabled"
TATTOO = {"ImageVersion": "1.0.20240505", "TemplateName": "it-win11-avd-golden", "BuildRunId": "run-42"}


def request(**overrides: Any) -> BootTestRequest:
    fields: dict[str, Any] = {
        "version_id": VERSION_ID,
        "os_type": "Windows",
        "location": "westeurope",
        "resource_group_id": GROUP_ID,
        "subnet_id": SUBNET_ID,
        "security_type": "TrustedLaunch",
        "settings": (FSLOGIX,),
        "timeout_seconds": 20,
        "correlation_id": "corr-7f3a",
    }
    return BootTestRequest(**(fields | overrides))


def check_line(tattoo: dict[str, str], settings: dict[str, str], problems: list[str] | None = None) -> str:
    return RESULT_MARKER + json.dumps({"tattoo": tattoo, "settings": settings, "problems": problems or []})


@pytest.fixture
def compute() -> Iterator[ComputeServer]:
    with ComputeServer() as server:
        server.add(VERSION)
        server.guest = lambda command: windows_output(check_line(TATTOO, {FSLOGIX: "1"}) + "\r\n")
        yield server


@pytest.fixture
def tester(compute: ComputeServer) -> Iterator[AzureBootTester]:
    credential = StaticTokenCredential()
    adapter = AzureBootTester(
        credential,
        delete_timeout_seconds=10,
        clock=lambda: NOW,
        new_suffix=lambda: SUFFIX,
        new_password=lambda: "Bt1!not-a-real-password",
        **client_kwargs(compute, credential, polling_interval=0.02),
    )
    yield adapter
    adapter.close()


def test_passing_check_reports_the_in_guest_tattoo_and_settings_and_deletes_the_vm(
    tester: AzureBootTester, compute: ComputeServer
) -> None:
    result = tester.run(request())

    assert result.outcome is BootTestOutcome.PASSED
    assert result.message is None
    assert result.vm_name == VM_NAME
    assert result.in_guest_tattoo == TATTOO
    assert result.settings == {FSLOGIX: "1"}
    assert RESULT_MARKER in result.output
    assert (result.started, result.finished) == (NOW, NOW)
    assert result.vm_deleted is True
    assert compute.deleted == [VM_NAME]
    assert compute.vms() == []


def test_vm_is_created_from_the_version_with_trusted_launch_and_everything_deleted_with_it(
    tester: AzureBootTester, compute: ComputeServer
) -> None:
    tester.run(request())

    (put,) = compute.seen("PUT")
    assert put.path == VM_PATH
    assert put.query == {"api-version": "2026-04-01"}
    vm = put.body
    assert vm["location"] == "westeurope"
    assert vm["tags"]["goldenImageBootTest"] == "throwaway"
    assert vm["tags"]["correlationId"] == "corr-7f3a"
    assert vm["tags"]["imageVersion"] == "gal_golden_staging/win11-avd-golden/1.0.20240505"
    assert vm["tags"]["deleteAfter"] == "2024-07-20T10:00:30+00:00"  # timeout + delete budget
    properties = vm["properties"]
    assert properties["hardwareProfile"] == {"vmSize": "Standard_D2s_v5"}
    assert properties["storageProfile"]["imageReference"] == {"id": VERSION_ID}
    assert properties["storageProfile"]["osDisk"]["deleteOption"] == "Delete"
    assert properties["securityProfile"] == {
        "securityType": "TrustedLaunch",
        "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
    }
    (nic,) = properties["networkProfile"]["networkInterfaceConfigurations"]
    assert properties["networkProfile"]["networkApiVersion"] == "2020-11-01"
    assert nic["properties"]["deleteOption"] == "Delete"
    (ip,) = nic["properties"]["ipConfigurations"]
    assert ip["properties"]["subnet"] == {"id": SUBNET_ID}
    assert "publicIPAddressConfiguration" not in ip["properties"]  # reachable from the VNet only
    assert properties["osProfile"]["computerName"] == f"bt{SUFFIX}"
    assert len(properties["osProfile"]["computerName"]) <= 15  # the Windows limit


def test_run_command_asks_the_guest_for_the_requested_settings(tester: AzureBootTester, compute: ComputeServer) -> None:
    tester.run(request(settings=(FSLOGIX, "HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows\\Personalization\\X")))

    (post,) = compute.seen("POST")
    assert post.path == f"{VM_PATH}/runCommand"
    assert post.query == {"api-version": "2026-04-01"}
    assert post.body["commandId"] == "RunPowerShellScript"
    script = "\n".join(post.body["script"])
    encoded = re.search(r"FromBase64String\('([A-Za-z0-9+/=]+)'\)", script)
    assert encoded is not None
    assert base64.b64decode(encoded.group(1)).decode().split("\n") == [
        FSLOGIX,
        "HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows\\Personalization\\X",
    ]
    assert "HKLM:\\SOFTWARE\\GoldenImage" in script


def test_in_guest_failure_is_failed_with_the_check_s_problems(tester: AzureBootTester, compute: ComputeServer) -> None:
    problem = "no in-guest tattoo at HKLM:\\SOFTWARE\\GoldenImage: Cannot find path"
    compute.guest = lambda command: windows_output(check_line({}, {}, [problem]))

    result = tester.run(request())

    assert result.outcome is BootTestOutcome.FAILED
    assert result.message == problem
    assert result.vm_deleted is True


def test_check_that_prints_no_result_is_failed_naming_its_error(
    tester: AzureBootTester, compute: ComputeServer
) -> None:
    compute.guest = lambda command: windows_output("", "Get-Item : Requested registry access is not allowed.")

    result = tester.run(request())

    assert result.outcome is BootTestOutcome.FAILED
    assert result.message is not None
    assert "printed no result" in result.message
    assert "Requested registry access is not allowed" in result.message
    assert "[stderr]" in result.output


def test_empty_tattoo_fails_the_check(tester: AzureBootTester, compute: ComputeServer) -> None:
    compute.guest = lambda command: windows_output(check_line({}, {}))

    result = tester.run(request())

    assert result.outcome is BootTestOutcome.FAILED
    assert result.message == "the in-guest tattoo is empty"


def test_linux_check_runs_in_a_real_shell_and_fails_without_a_tattoo(
    tester: AzureBootTester, compute: ComputeServer
) -> None:
    if Path("/etc/golden-image/tattoo.json").exists():
        pytest.skip("this machine carries a golden image tattoo")
    compute.guest = run_linux_check_here

    result = tester.run(request(os_type="Linux", security_type=None, settings=("kernel.ostype", "/no/such/file")))

    (post,) = compute.seen("POST")
    assert post.body["commandId"] == "RunShellScript"
    assert result.outcome is BootTestOutcome.FAILED
    assert result.message is not None
    assert "no readable in-guest tattoo at /etc/golden-image/tattoo.json" in result.message
    assert result.settings == {"kernel.ostype": "Linux"}  # absent settings are left out, not failures
    assert result.vm_deleted is True
    (put,) = compute.seen("PUT")
    assert "securityProfile" not in put.body["properties"]
    assert put.body["properties"]["osProfile"]["linuxConfiguration"]["provisionVMAgent"] is True


def test_linux_check_passes_with_the_tattoo_from_its_stdout_section(
    tester: AzureBootTester, compute: ComputeServer
) -> None:
    line = check_line({"imageVersion": "1.0.7"}, {"net.ipv4.ip_forward": "0"})
    compute.guest = lambda command: linux_output(f"{line}\n")

    result = tester.run(request(os_type="Linux", settings=("net.ipv4.ip_forward",)))

    assert result.outcome is BootTestOutcome.PASSED
    assert result.in_guest_tattoo == {"imageVersion": "1.0.7"}
    assert result.settings == {"net.ipv4.ip_forward": "0"}


def test_long_output_is_truncated_and_still_read(tester: AzureBootTester, compute: ComputeServer) -> None:
    noise = "\n".join(f"WARNING: line {i} of a chatty profile script" for i in range(2000))
    compute.guest = lambda command: windows_output(noise + "\n" + check_line(TATTOO, {}))

    result = tester.run(request())

    assert result.outcome is BootTestOutcome.PASSED
    assert len(result.output) <= OUTPUT_LIMIT
    assert result.output.endswith("[truncated]")


def test_vm_creation_failure_is_error_and_the_failed_vm_is_deleted(
    tester: AzureBootTester, compute: ComputeServer
) -> None:
    compute.create_failure = ("AllocationFailed", "Allocation failed. We do not have sufficient capacity.")

    result = tester.run(request())

    assert result.outcome is BootTestOutcome.ERROR
    assert result.message is not None
    assert "could not be created" in result.message
    assert "AllocationFailed" in result.message
    assert compute.seen("POST") == []  # no check on a VM that is not there
    assert result.vm_deleted is True
    assert compute.deleted == [VM_NAME]


def test_image_that_never_reports_ready_is_timed_out(tester: AzureBootTester, compute: ComputeServer) -> None:
    compute.create_failure = ("OSProvisioningTimedOut", "OS Provisioning for VM did not finish in the allotted time.")

    result = tester.run(request())

    assert result.outcome is BootTestOutcome.TIMED_OUT
    assert result.message is not None
    assert "OSProvisioningTimedOut" in result.message
    assert result.vm_deleted is True


def test_refused_creation_is_error_and_deletion_is_still_attempted(
    tester: AzureBootTester, compute: ComputeServer
) -> None:
    missing = VERSION_ID.replace("1.0.20240505", "9.9.9")

    result = tester.run(request(version_id=missing))

    assert result.outcome is BootTestOutcome.ERROR
    assert result.message is not None
    assert "GalleryImageNotFound" in result.message
    assert len(compute.seen("DELETE")) == 1  # answered 204: nothing was there
    assert result.vm_deleted is True


def test_refused_run_command_is_error_and_the_vm_is_deleted(tester: AzureBootTester, compute: ComputeServer) -> None:
    compute.inject(Fault(409, "Conflict", "Run command extension execution is in progress.", method="POST"))

    result = tester.run(request())

    assert result.outcome is BootTestOutcome.ERROR
    assert result.message is not None
    assert "in-guest check could not run" in result.message
    assert result.vm_deleted is True
    assert compute.vms() == []


def test_hanging_run_command_times_out_within_the_timeout_and_the_vm_is_still_deleted(
    tester: AzureBootTester, compute: ComputeServer
) -> None:
    compute.hang_run_command = True

    began = time.monotonic()
    result = tester.run(request(timeout_seconds=1))
    elapsed = time.monotonic() - began

    assert result.outcome is BootTestOutcome.TIMED_OUT
    assert result.message == "the in-guest check did not finish within 1 s"
    assert elapsed < 5
    assert result.vm_deleted is True
    assert compute.deleted == [VM_NAME]


def test_failed_deletion_is_recorded_not_raised(tester: AzureBootTester, compute: ComputeServer) -> None:
    compute.inject(Fault(500, "InternalServerError", method="DELETE", times=None))

    result = tester.run(request())

    assert result.outcome is BootTestOutcome.PASSED
    assert result.vm_deleted is False
    assert len(compute.seen("DELETE")) == 3  # the first try and retry_total=2 retries
    assert [vm["name"] for vm in compute.vms()] == [VM_NAME]  # left for the deleteAfter sweep


def test_deletion_refused_while_another_operation_runs_is_retried(
    tester: AzureBootTester, compute: ComputeServer
) -> None:
    compute.inject(Fault(409, "OperationNotAllowed", "Another operation is in progress.", method="DELETE"))

    result = tester.run(request())

    assert result.vm_deleted is True
    assert len(compute.seen("DELETE")) == 2


def test_unreachable_resource_manager_raises_upstream_error() -> None:
    credential = StaticTokenCredential()
    with ComputeServer() as server:
        dead = client_kwargs(server, credential, retry_total=0, polling_interval=0.02)
    tester = AzureBootTester(credential, delete_timeout_seconds=1, **dead)

    with pytest.raises(UpstreamError, match="ServiceRequestError"):
        tester.run(request())


def test_requests_it_cannot_serve_are_invalid_input_before_any_call(
    tester: AzureBootTester, compute: ComputeServer
) -> None:
    with pytest.raises(InvalidInput, match="subnet"):
        tester.run(request(subnet_id=None))
    with pytest.raises(InvalidInput, match="resource group"):
        tester.run(request(resource_group_id=f"{GROUP_ID}/providers/Microsoft.Network/virtualNetworks/v"))
    with pytest.raises(InvalidInput, match="security_type"):
        tester.run(request(security_type="SecureEnclave"))
    with pytest.raises(InvalidInput, match="line break"):
        tester.run(request(settings=("a\nb",)))
    assert compute.seen() == []


def test_vm_names_fit_azure_limits() -> None:
    long_image = VERSION_ID.replace("win11-avd-golden", "w" * 80)

    assert VM_NAME == "bt-win11-avd-golden-1-0-20240505-a1b2c3d4"
    name = boot_test_vm_name(long_image, SUFFIX)
    assert len(name) <= 64
    assert name.endswith("-1-0-20240505-a1b2c3d4")


def test_importing_the_boot_tester_does_not_import_the_sdks() -> None:
    probe = "import sys, shared.adapters.boot_test; print(sorted(m for m in sys.modules if m.startswith('azure')))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"
