"""The `ImageBuilder` and `Gallery` ports over the offline ARM store (and `offline_boot_tester`).

They hand the domain the same views the Azure adapters do (`ImageTemplate.from_arm(doc)`),
so services cannot tell the offline world from Azure. Unlike Azure, `run_template` completes
the run before returning (the events reach the webhook first, which keeps demos and tests
deterministic); `run_in_background` keeps a caller that serves that webhook on a single
thread from waiting on itself. As with Event Grid, a failed delivery is not the caller's
failure: it is logged, and the app's reconcile timer catches up from `lastRunStatus`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from azure.storage.blob import BlobServiceClient

from shared.domain.arm import GalleryImageDefinition, GalleryImageVersion, ImageTemplate, RunOutput
from shared.domain.resource_ids import GALLERY_IMAGE, GALLERY_IMAGE_VERSION, IMAGE_TEMPLATE, ResourceId
from shared.errors import InvalidInput
from shared.local.offline.boot_test import OfflineBootTester
from shared.local.offline.events import EventDeliveryError, new_uuid
from shared.local.offline.simulator import (
    DEFAULT_INITIATOR,
    SimulatedOutcome,
    run_image_template,
    set_outcome,
)
from shared.local.offline.store import DEFAULT_CONTAINER, ArmStore

log = logging.getLogger(__name__)
# The function app's managed identity in the offline world: who starts the runs the app starts.
FUNCTION_APP_CLIENT_ID = "2d7f4b9a-6c1e-4f3b-a8d2-9e5c1b7a3f60"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _require_type(resource_id: str, full_type: str) -> None:
    if not ResourceId.parse(resource_id).is_type(full_type):
        raise InvalidInput(f"{resource_id!r} is not a {full_type} id")


class OfflineImageBuilder:
    """Image Builder: templates and run outputs from the store; runs simulated."""

    def __init__(
        self,
        store: ArmStore,
        *,
        webhook_url: str | None = None,
        initiator: str = DEFAULT_INITIATOR,
        clock: Callable[[], datetime] = _utcnow,
        new_id: Callable[[], str] = new_uuid,
        run_in_background: bool = False,
    ) -> None:
        self._store = store
        self._webhook_url = webhook_url
        self._initiator = initiator
        self._clock = clock
        self._new_id = new_id
        self._run_in_background = run_in_background

    def get_template(self, template_id: str) -> ImageTemplate:
        _require_type(template_id, IMAGE_TEMPLATE)
        template: ImageTemplate = ImageTemplate.from_arm(self._store.get(template_id))
        return template

    def get_run_output(self, template_id: str, run_output_name: str) -> RunOutput | None:
        _require_type(template_id, IMAGE_TEMPLATE)
        document = self._store.find(f"{template_id.rstrip('/')}/runOutputs/{run_output_name}")
        run_output: RunOutput | None = None if document is None else RunOutput.from_arm(document)
        return run_output

    def run_template(self, template_id: str) -> None:
        _require_type(template_id, IMAGE_TEMPLATE)
        if not self._run_in_background:
            self._run(template_id)
            return
        self._store.get(template_id)  # a missing template fails the caller, as Azure's 404 would
        threading.Thread(target=self._run_logged, args=(template_id,), name="offline-image-build", daemon=True).start()

    def set_outcome(self, template_id: str, outcome: SimulatedOutcome, message: str | None = None) -> None:
        """How this template's next runs end (see `simulator.set_outcome`)."""
        set_outcome(self._store, template_id, outcome, message)

    def _run(self, template_id: str) -> None:
        try:
            run_image_template(
                self._store,
                template_id,
                now=self._clock(),
                new_id=self._new_id,
                initiator=self._initiator,
                webhook_url=self._webhook_url,
            )
        except EventDeliveryError as exc:
            log.warning(
                "offline run events were not delivered",
                extra={"template_id": template_id, "webhook_status": exc.response_status, "error": str(exc)},
            )

    def _run_logged(self, template_id: str) -> None:
        try:
            self._run(template_id)
        except Exception:  # a background thread has nobody else to tell
            log.exception("offline image build failed", extra={"template_id": template_id})


class OfflineGallery:
    """Compute Gallery image versions and definitions from the store."""

    def __init__(self, store: ArmStore) -> None:
        self._store = store

    def get_image_version(self, version_id: str) -> GalleryImageVersion:
        _require_type(version_id, GALLERY_IMAGE_VERSION)
        version: GalleryImageVersion = GalleryImageVersion.from_arm(self._store.get(version_id))
        return version

    def list_image_versions(self, image_id: str) -> list[GalleryImageVersion]:
        _require_type(image_id, GALLERY_IMAGE)
        self._store.get(image_id)  # Azure answers 404 for the versions of a missing image definition
        return [GalleryImageVersion.from_arm(doc) for doc in self._store.children(image_id, "versions")]

    def get_image_definition(self, image_id: str) -> GalleryImageDefinition:
        _require_type(image_id, GALLERY_IMAGE)
        definition: GalleryImageDefinition = GalleryImageDefinition.from_arm(self._store.get(image_id))
        return definition


def offline_ports(
    service: BlobServiceClient | str,
    container: str = DEFAULT_CONTAINER,
    webhook_url: str | None = None,
    *,
    initiator: str = FUNCTION_APP_CLIENT_ID,
) -> tuple[OfflineImageBuilder, OfflineGallery]:
    """The app's `ImageBuilder` and `Gallery` in offline mode, sharing one store."""
    store = ArmStore(service, container)
    return OfflineImageBuilder(store, webhook_url=webhook_url, initiator=initiator), OfflineGallery(store)


def offline_boot_tester(service: BlobServiceClient | str, container: str = DEFAULT_CONTAINER) -> OfflineBootTester:
    """The app's `BootTester` in offline mode, over the same store as `offline_ports` (given the same container).

    Configure how its boot tests end with `OfflineBootTester.set_boot_behaviour`.
    """
    return OfflineBootTester(ArmStore(service, container))
