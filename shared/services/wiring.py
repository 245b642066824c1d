"""Builds the app's services from settings, lazily and once per worker.

The only place that chooses between Azure adapters and the offline provider.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from shared.domain.audit_events import digest_sealed_event
from shared.domain.policy import Policy
from shared.errors import ConfigurationError
from shared.ports import (
    BootTester,
    ChangeRepository,
    EventPublisher,
    Gallery,
    ImageBuilder,
    RejectedEventStore,
    TattooRepository,
)
from shared.services.audit_query import AuditQueries
from shared.services.builds import BuildScheduler
from shared.services.images import ImageQueries
from shared.services.intake import BuildIntake
from shared.services.policy_source import policy_from
from shared.settings import Settings, load_settings, policy_file_of

if TYPE_CHECKING:
    from shared.adapters.audit_archive import BlobContainerArchive
    from shared.adapters.audit_immutability import Immutability
    from shared.adapters.nonce_table import TableNonceStore
    from shared.adapters.signing import DigestSigner
    from shared.adapters.tattoo_table import TableTattooRepository
    from shared.adapters.validation_reports import BlobValidationReports
    from shared.domain.callbacks import CallbackVerifier
    from shared.ports import AuditLog
    from shared.services.access import AccessControl
    from shared.services.approvals import Approvals
    from shared.services.audit import AuditTrail
    from shared.services.audit_outbox import OutboxDrainer
    from shared.services.audit_seal import AuditSealer, DigestResult
    from shared.services.policy_dry_run import PolicyDryRun
    from shared.services.scans import ScanIntake
    from shared.services.validation import ValidationGate


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    settings: Settings

    @cached_property
    def _blob_service(self):  # type: ignore[no-untyped-def]  # SDK type stays inside adapters
        from shared.adapters.storage import blob_service

        return blob_service(self.settings.storage)

    @cached_property
    def _table_service(self):  # type: ignore[no-untyped-def]  # SDK type stays inside adapters
        from shared.adapters.storage import table_service

        return table_service(self.settings.storage)

    @cached_property
    def _tattoo_table(self) -> TableTattooRepository:
        from shared.adapters.tattoo_table import TableTattooRepository

        return TableTattooRepository(self._table_service, self.settings.tattoo_table)

    @property
    def tattoos(self) -> TattooRepository:
        return self._tattoo_table

    # --- audit trail ----------------------------------------------------------------------

    @cached_property
    def audit_log(self) -> AuditLog:
        from shared.adapters.audit_log import BlobAuditLog

        # Shard head hints share the tattoo table (Kind="audit-head").
        return BlobAuditLog(self._blob_service, self.settings.audit_container, self._tattoo_table.table)

    @cached_property
    def audit_trail(self) -> AuditTrail:
        from shared.services.audit import AuditTrail

        # A random home shard per worker: instances rarely contend for one chain's append position.
        home = random.SystemRandom().randrange(self.settings.audit_shards)
        return AuditTrail(self.audit_log, self.settings.audit_shards, utc_now, home_shard=home)

    @cached_property
    def audit_outbox(self) -> OutboxDrainer:
        from shared.adapters.outbox_table import TableOutbox
        from shared.services.audit_outbox import OutboxDrainer

        outbox = TableOutbox(self._table_service, self.settings.tattoo_table)
        return OutboxDrainer(
            outbox, self.audit_trail, self.audit_log, utc_now, background=True, retire_in_band=False
        )

    @cached_property
    def audit_archive(self) -> BlobContainerArchive:
        from shared.adapters.audit_archive import BlobContainerArchive

        return BlobContainerArchive(self._blob_service.get_container_client(self.settings.audit_container))

    @cached_property
    def audit_sealer(self) -> AuditSealer:
        from shared.services.audit_seal import AuditSealer

        return AuditSealer(self.audit_archive, self._digest_signer, utc_now, on_sealed=self._record_sealed)

    @cached_property
    def _digest_signer(self) -> DigestSigner:
        from shared.adapters.signing import KeyVaultSigner, LocalKeySigner

        settings = self.settings
        if settings.audit_key_vault_key_id:
            return KeyVaultSigner(settings.audit_key_vault_key_id, self._arm_credential)
        if settings.audit_signing_key_file:
            return LocalKeySigner.from_file(settings.audit_signing_key_file)
        raise ConfigurationError("AUDIT_KEY_VAULT_KEY_ID (Azure) or AUDIT_SIGNING_KEY_FILE (development) is required")

    def _record_sealed(self, result: DigestResult) -> None:
        event = digest_sealed_event(result.path, result.details(), utc_now())
        self.audit_outbox.record_once(f"digest~{result.path.split('/')[2]}", event)

    @cached_property
    def rejected_events(self) -> RejectedEventStore:
        from shared.adapters.rejected_events import BlobRejectedEventStore

        return BlobRejectedEventStore(self._blob_service, self.settings.rejected_events_container)

    @cached_property
    def audit_immutability(self) -> Immutability:
        """Read once per worker: a container's immutability does not come and go."""
        from shared.adapters.audit_immutability import container_immutability

        return container_immutability(self._blob_service.get_container_client(self.settings.audit_container))

    def require_ready(self) -> Services:
        """Refuse to work, in Azure, while the audit container is not write-once (unless overridden)."""
        if self.settings.mode == "azure" and not self.settings.audit_allow_mutable_container:
            immutability = self.audit_immutability
            if not immutability.protected:
                raise ConfigurationError(
                    f"audit container {self.settings.audit_container!r}: {immutability.detail}; apply the "
                    "immutability policy from infra/ (or set AUDIT_ALLOW_MUTABLE_CONTAINER=true, break-glass only)"
                )
        return self

    @cached_property
    def _azure_ports(self) -> tuple[ImageBuilder, Gallery]:
        if self.settings.mode == "offline":
            from shared.local.offline.adapters import offline_ports

            return offline_ports(
                self._blob_service, self.settings.offline_store_container, self.settings.offline_event_webhook_url
            )
        from shared.adapters.gallery import AzureGallery
        from shared.adapters.imagebuilder import AzureImageBuilder

        return AzureImageBuilder(self._arm_credential), AzureGallery(self._arm_credential)

    @property
    def image_builder(self) -> ImageBuilder:
        return self._azure_ports[0]

    @property
    def gallery(self) -> Gallery:
        return self._azure_ports[1]

    @cached_property
    def intake(self) -> BuildIntake:
        return BuildIntake(
            self.image_builder,
            self.gallery,
            self.tattoos,
            self.rejected_events,
            clock=utc_now,
            staging_gallery_id=self.settings.staging_gallery_id,
            audit=self.audit_outbox,
        )

    # --- validation gate ---------------------------------------------------------------------

    @cached_property
    def policy(self) -> Policy:
        return policy_from(policy_file_of(self.settings))

    @cached_property
    def changes(self) -> ChangeRepository:
        from shared.adapters.change_table import TableChangeRepository

        # The tattoo table: the audit outbox drainer then covers the changes' outbox rows too.
        return TableChangeRepository(self._table_service, self.settings.tattoo_table)

    @cached_property
    def boot_tester(self) -> BootTester:
        if self.settings.mode == "offline":
            from shared.local.offline.adapters import offline_boot_tester

            return offline_boot_tester(self._blob_service, self.settings.offline_store_container)
        from shared.adapters.boot_test import AzureBootTester

        return AzureBootTester(self._arm_credential)

    @cached_property
    def events(self) -> EventPublisher:
        from shared.adapters.event_publisher import event_publisher_for

        return event_publisher_for(self.settings, self._blob_service, lambda: self._arm_credential)

    @cached_property
    def _arm_credential(self):  # type: ignore[no-untyped-def]  # SDK type stays inside adapters
        from shared.adapters.storage import azure_credential

        storage = self.settings.storage
        return azure_credential(storage.client_id, managed_identity=storage.credential == "managedidentity")

    @cached_property
    def validation_reports(self) -> BlobValidationReports:
        from shared.adapters.validation_reports import BlobValidationReports

        return BlobValidationReports(self._blob_service, self.settings.validation_reports_container)

    @cached_property
    def validation(self) -> ValidationGate:
        from shared.services.validation import BootTestPlacement, ValidationGate

        settings = self.settings
        return ValidationGate(
            policy=self.policy,
            tattoos=self.tattoos,
            changes=self.changes,
            gallery=self.gallery,
            builder=self.image_builder,
            boot_tester=self.boot_tester,
            keep_report=self.validation_reports.keep,
            audit=self.audit_outbox,
            events=self.events,
            clock=utc_now,
            default_environment=settings.policy_environment,
            boot_placement=BootTestPlacement(
                settings.boot_test_resource_group_id,
                settings.boot_test_subnet_id,
                derive_missing=settings.mode == "offline",
            ),
        )

    @cached_property
    def scans(self) -> ScanIntake:
        from shared.services.scans import ScanIntake

        return ScanIntake(self.tattoos, self.audit_outbox, self.validation, utc_now)

    @cached_property
    def policy_dry_run(self) -> PolicyDryRun:
        from shared.services.policy_dry_run import PolicyDryRun

        policy, default = self.policy, self.settings.policy_environment
        def environment_of(gallery: str) -> str:
            return policy.environment_for_gallery(gallery) or default

        return PolicyDryRun(policy, self.tattoos, self.gallery, environment_of, utc_now)

    # --- approval workflow -------------------------------------------------------------------

    @cached_property
    def approvals(self) -> Approvals:
        from shared.services.approvals import Approvals

        return Approvals(
            changes=self.changes,
            tattoos=self.tattoos,
            audit=self.audit_outbox,
            events=self.events,
            access=self.access,
            policy=self.policy,
            clock=utc_now,
            sod_strict=self.settings.approval_sod_strict,
        )

    @cached_property
    def callbacks(self) -> CallbackVerifier:
        from shared.adapters.identity import callback_verifier_for

        return callback_verifier_for(self.settings, self.callback_nonces)

    @cached_property
    def callback_nonces(self) -> TableNonceStore:
        from shared.adapters.nonce_table import TableNonceStore

        return TableNonceStore(self._table_service, self.settings.callback_nonce_table)

    # --- access ------------------------------------------------------------------------------

    @cached_property
    def access(self) -> AccessControl:
        from shared.adapters.identity import authenticator_for
        from shared.services.access import AccessControl

        return AccessControl(authenticator_for(self.settings).authenticate, self.audit_outbox, utc_now)

    @cached_property
    def scheduler(self) -> BuildScheduler:
        return BuildScheduler(self.image_builder, self.tattoos, self.intake)

    @cached_property
    def images(self) -> ImageQueries:
        return ImageQueries(self.tattoos)

    @cached_property
    def audit_queries(self) -> AuditQueries:
        archive = self.audit_archive
        return AuditQueries(archive.list_names, archive.read, self.settings.audit_shards, utc_now)


@lru_cache(maxsize=1)
def get_services() -> Services:
    return Services(load_settings())
