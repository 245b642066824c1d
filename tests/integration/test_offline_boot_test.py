"""The offline boot tester against real Azurite: a VM document per test, configured outcomes, always deleted."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.domain.evidence import BootTestOutcome, BootTestRequest
from shared.errors import InvalidInput
from shared.local.offline.adapters import offline_boot_tester, offline_ports
from shared.local.offline.boot_test import OfflineBootTester, get_boot_control, set_boot_behaviour
from shared.local.offline.sample import SampleFactory, seed_sample_factory
from shared.local.offline.simulator import get_outcome, run_image_template, set_outcome
from shared.local.offline.store import ArmStore

NOW = datetime(2024, 7, 20, 10, 0, tzinfo=UTC)
FSLOGIX = "HKLM:\\SOFTWARE\\FSLogix\\Profiles\\Enabled"


@pytest.fixture
def store(azurite: str, unique_name: str) -> ArmStore:
    return ArmStore(azurite, unique_name)


@pytest.fixture
def factory(store: ArmStore) -> SampleFactory:
    return seed_sample_factory(store)


@pytest.fixture
def version_id(store: ArmStore, factory: SampleFactory) -> str:
    result = run_image_template(store, factory.windows_template_id, now=NOW, deliver=False)
    assert result.version_id is not None
    return result.version_id


def group_id(factory: SampleFactory) -> str:
    return f"/subscriptions/{factory.subscription_id}/resourceGroups/rg-boot-test"


def vm_prefix(factory: SampleFactory) -> str:
    return f"{group_id(factory)}/providers/Microsoft.Compute/virtualMachines/"


def request(factory: SampleFactory, version_id: str, **overrides: Any) -> BootTestRequest:
    fields: dict[str, Any] = {
        "version_id": version_id,
        "os_type": "Windows",
        "location": "westeurope",
        "resource_group_id": group_id(factory),
        "subnet_id": f"{group_id(factory)}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/snet-boot-test",
        "security_type": "TrustedLaunchSupported",
        "settings": (FSLOGIX,),
        "timeout_seconds": 30,
        "correlation_id": "corr-offline-1",
    }
    return BootTestRequest(**(fields | overrides))


def boot_tester(store: ArmStore, **kwargs: Any) -> OfflineBootTester:
    return OfflineBootTester(store, clock=lambda: NOW, new_suffix=lambda: "0ff11e00", **kwargs)


def test_boot_test_passes_by_default_with_the_version_s_tags_as_in_guest_tattoo(
    store: ArmStore, factory: SampleFactory, version_id: str
) -> None:
    result = boot_tester(store).run(request(factory, version_id))

    assert result.outcome is BootTestOutcome.PASSED
    assert result.message is None
    assert result.in_guest_tattoo == store.get(version_id)["tags"]
    assert result.in_guest_tattoo["baseosimg"] == "windows11"
    assert result.settings == {}  # the simulated guest holds no settings until configured
    assert result.output.startswith("GOLDEN-IMAGE-BOOT-TEST {")
    assert result.vm_name == "bt-win11-avd-1-0-1-0ff11e00"
    assert (result.started, result.finished) == (NOW, NOW)
    assert result.vm_deleted is True
    assert store.list_by_prefix(vm_prefix(factory)) == []


def test_the_throw_away_vm_is_an_arm_document_while_the_check_runs_and_never_holds_a_password(
    store: ArmStore, factory: SampleFactory, version_id: str
) -> None:
    during: list[dict[str, Any]] = []
    set_boot_behaviour(store, version_id, "hang")

    boot_tester(store, sleep=lambda seconds: during.extend(store.list_by_prefix(vm_prefix(factory)))).run(
        request(factory, version_id)
    )

    (vm,) = during
    assert vm["id"] == f"{vm_prefix(factory)}bt-win11-avd-1-0-1-0ff11e00"
    assert vm["type"] == "Microsoft.Compute/virtualMachines"
    assert vm["tags"]["goldenImageBootTest"] == "throwaway"
    assert vm["tags"]["correlationId"] == "corr-offline-1"
    properties = vm["properties"]
    assert properties["provisioningState"] == "Succeeded"
    assert properties["storageProfile"]["imageReference"] == {"id": version_id}
    assert properties["storageProfile"]["osDisk"]["deleteOption"] == "Delete"
    assert properties["securityProfile"]["securityType"] == "TrustedLaunch"
    assert "adminPassword" not in properties["osProfile"]
    assert store.list_by_prefix(vm_prefix(factory)) == []


def test_failure_configured_for_the_template_fails_the_check_with_its_message(
    store: ArmStore, factory: SampleFactory, version_id: str
) -> None:
    set_boot_behaviour(store, factory.windows_template_id, "fail", "FSLogix is not installed")

    result = boot_tester(store).run(request(factory, version_id))

    assert result.outcome is BootTestOutcome.FAILED
    assert result.message == "FSLogix is not installed"
    assert result.in_guest_tattoo  # the guest booted and its tattoo was read
    assert result.vm_deleted is True


def test_behaviour_of_the_version_wins_over_its_image_and_template(
    store: ArmStore, factory: SampleFactory, version_id: str
) -> None:
    set_boot_behaviour(store, factory.windows_template_id, "fail")
    set_boot_behaviour(store, factory.windows_staging_image_id, "error")
    set_boot_behaviour(store, version_id, "pass")

    assert boot_tester(store).run(request(factory, version_id)).outcome is BootTestOutcome.PASSED
    assert get_boot_control(store, version_id).behaviour == "pass"


def test_behaviour_of_the_image_definition_applies_to_its_versions(
    store: ArmStore, factory: SampleFactory, version_id: str
) -> None:
    set_boot_behaviour(store, factory.windows_staging_image_id, "fail", "image-wide problem")

    assert boot_tester(store).run(request(factory, version_id)).message == "image-wide problem"


def test_template_behaviour_does_not_reach_versions_of_other_images(
    store: ArmStore, factory: SampleFactory, version_id: str
) -> None:
    set_boot_behaviour(store, factory.linux_template_id, "fail")

    assert boot_tester(store).run(request(factory, version_id)).outcome is BootTestOutcome.PASSED


def test_guest_settings_answer_the_settings_the_request_names(
    store: ArmStore, factory: SampleFactory, version_id: str
) -> None:
    set_boot_behaviour(store, factory.windows_template_id, guest_settings={FSLOGIX: "1", "HKLM:\\Other\\X": "0"})

    result = boot_tester(store).run(request(factory, version_id, settings=(FSLOGIX, "HKLM:\\Absent\\Y")))

    assert result.outcome is BootTestOutcome.PASSED
    assert result.settings == {FSLOGIX: "1"}  # absent settings are left out; the policy judges them


def test_hanging_check_waits_for_the_timeout_then_times_out_and_deletes_the_vm(
    store: ArmStore, factory: SampleFactory, version_id: str
) -> None:
    set_boot_behaviour(store, version_id, "hang")

    began = time.monotonic()
    result = OfflineBootTester(store).run(request(factory, version_id, timeout_seconds=1))

    assert time.monotonic() - began >= 1
    assert result.outcome is BootTestOutcome.TIMED_OUT
    assert result.message == "the in-guest check did not finish within 1 s"
    assert result.vm_deleted is True
    assert store.list_by_prefix(vm_prefix(factory)) == []


def test_vm_that_cannot_be_created_is_error_and_its_failed_document_is_deleted(
    store: ArmStore, factory: SampleFactory, version_id: str
) -> None:
    set_boot_behaviour(store, version_id, "error", "HTTP 409 SkuNotAvailable: Standard_D2s_v5 is not available")

    result = boot_tester(store).run(request(factory, version_id))

    assert result.outcome is BootTestOutcome.ERROR
    assert result.message == "the VM could not be created: HTTP 409 SkuNotAvailable: Standard_D2s_v5 is not available"
    assert result.vm_deleted is True
    assert store.list_by_prefix(vm_prefix(factory)) == []


def test_missing_version_is_error_without_a_vm(store: ArmStore, factory: SampleFactory, version_id: str) -> None:
    missing = version_id.replace("/versions/1.0.1", "/versions/9.9.9")

    result = boot_tester(store).run(request(factory, missing))

    assert result.outcome is BootTestOutcome.ERROR
    assert result.message is not None
    assert "GalleryImageNotFound" in result.message
    assert result.vm_deleted is True


def test_version_without_tags_fails_for_lack_of_an_in_guest_tattoo(
    store: ArmStore, factory: SampleFactory, version_id: str
) -> None:
    store.update(version_id, lambda doc: doc.update(tags={}))

    result = boot_tester(store).run(request(factory, version_id))

    assert result.outcome is BootTestOutcome.FAILED
    assert result.message == "the in-guest tattoo is empty"


def test_boot_behaviour_lives_beside_the_build_outcome_of_the_same_template(
    store: ArmStore, factory: SampleFactory
) -> None:
    set_outcome(store, factory.windows_template_id, "fail", "build broken")
    set_boot_behaviour(store, factory.windows_template_id, "hang")

    assert get_outcome(store, factory.windows_template_id) == ("fail", "build broken")


def test_unknown_behaviour_and_unusable_requests_are_invalid_input(
    store: ArmStore, factory: SampleFactory, version_id: str
) -> None:
    with pytest.raises(InvalidInput):
        set_boot_behaviour(store, version_id, "explode")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="subnet"):
        boot_tester(store).run(request(factory, version_id, subnet_id=None))
    with pytest.raises(InvalidInput):
        boot_tester(store).run(request(factory, factory.windows_staging_image_id))


def test_offline_boot_tester_shares_the_store_of_the_offline_ports(azurite: str, unique_name: str) -> None:
    seeded = seed_sample_factory(ArmStore(azurite, unique_name))
    builder, gallery = offline_ports(azurite, unique_name)
    builder.run_template(seeded.linux_template_id)
    (version,) = gallery.list_image_versions(seeded.linux_staging_image_id)
    boot = offline_boot_tester(azurite, unique_name)
    boot.set_boot_behaviour(seeded.linux_template_id, "fail", "sshd_config is not hardened")

    result = boot.run(request(seeded, version.id, os_type="Linux", settings=("net.ipv4.ip_forward",)))

    assert result.outcome is BootTestOutcome.FAILED
    assert result.message == "sshd_config is not hardened"
    assert result.in_guest_tattoo["hardening"] == "cis-level1"
    assert gallery.get_image_definition(seeded.linux_staging_image_id).properties.os_type == "Linux"
