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
from shared.errors import ConfigurationError
from shared.ports import Gallery, ImageBuilder, RejectedEventStore, TattooRepository
from shared.services.audit_query import AuditQueries
from shared.services.builds import BuildScheduler
from shared.services.images import ImageQueries
from shared.services.intake import BuildIntake
from shared.settings import Settings, load_settings

if TYPE_CHECKING:
    from shared.adapters.audit_archive import BlobContainerArchive
    from shared.adapters.audit_immutability import Immutability
    from shared.adapters.signing import DigestSigner
    from shared.adapters.tattoo_table import TableTattooRepository
    from shared.ports import AuditLog
    from shared.services.audit import AuditTrail
    from shared.services.audit_outbox import OutboxDrainer
    from shared.services.audit_seal import AuditSealer, DigestResult


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
        from shared.adapters.storage import azure_credential

        settings = self.settings
        if settings.audit_key_vault_key_id:
            storage = settings.storage
            credential = azure_credential(storage.client_id, managed_identity=storage.credential == "managedidentity")
            return KeyVaultSigner(settings.audit_key_vault_key_id, credential)
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
        from shared.adapters.storage import azure_credential

        storage = self.settings.storage
        credential = azure_credential(storage.client_id, managed_identity=storage.credential == "managedidentity")
        return AzureImageBuilder(credential), AzureGallery(credential)

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
