"""Build intake: Resource Manager events and timers in, image tattoos out.

Events are pointers. Whatever an event claims, the truth is re-read from Azure
(`lastRunStatus`, the run output, the image version) and merged into the tattoo with an
ETag-guarded read-merge-write, so duplicate, late and reordered deliveries converge on one
record. Malformed events are kept in the rejected-events store and acknowledged: retrying
cannot fix them.

Every status change, and every rejected input, is audited exactly once through the
transactional outbox (`services.audit_outbox`): the audit event is written on the tattoo entity
in the same single-entity write, then appended in-band; the outbox timer recovers what a crash left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shared.domain.arm import GalleryImageVersion, ImageTemplate
from shared.domain.audit_events import input_rejected_event, rejected_partition, tattoo_status_event
from shared.domain.resource_events import (
    Initiator,
    RunCompleted,
    Unrelated,
    VersionWritten,
    parse_resource_event,
)
from shared.domain.resource_ids import ResourceId, normalize
from shared.domain.tattoo import (
    BaseImage,
    ImageTattoo,
    Principal,
    TattooKey,
    TattooStatus,
    delta_changes_of,
    merge,
    replication_of,
    run_id_of,
)
from shared.errors import Conflict, InvalidInput, NotFound
from shared.ports import AuditOutbox, Gallery, ImageBuilder, RejectedEventStore, TattooRepository
from shared.services.audited_writes import drain_or_defer
from shared.services.recent_tattoos import RecentTattoos

log = logging.getLogger(__name__)

Outcome = Literal["recorded", "unchanged", "ignored", "deferred", "rejected"]


class _Unread:
    """The tattoo row has not been read yet (as opposed to read and found absent)."""


UNREAD = _Unread()
MAX_WRITE_ATTEMPTS = 10


@dataclass(frozen=True)
class IntakeResult:
    outcome: Outcome
    detail: str
    key: TattooKey | None = None
    status: TattooStatus | None = None


class BuildIntake:
    def __init__(
        self,
        builder: ImageBuilder,
        gallery: Gallery,
        tattoos: TattooRepository,
        rejected: RejectedEventStore,
        *,
        clock: Callable[[], datetime],
        staging_gallery_id: str | None = None,
        audit: AuditOutbox | None = None,
    ) -> None:
        self._builder = builder
        self._audit = audit
        self._gallery = gallery
        self._tattoos = tattoos
        self._rejected = rejected
        self._clock = clock
        self._staging_gallery = normalize(staging_gallery_id) if staging_gallery_id else None
        self._recent = RecentTattoos()

    def handle_event(self, event: Mapping[str, Any], correlation_id: str) -> IntakeResult:
        """One Event Grid event. Raises only for faults worth a retry (UpstreamError, Conflict)."""
        try:
            signal = parse_resource_event(event)
        except InvalidInput as exc:
            return self._reject(event, str(exc), correlation_id)
        if isinstance(signal, Unrelated):
            return IntakeResult("ignored", f"{signal.event_type} {signal.operation or ''} is not a build signal")
        try:
            if isinstance(signal, RunCompleted):
                return self.record_run(signal.template_id, correlation_id, signal.initiator, signal.arm_correlation_id)
            return self._record_version_signal(signal, correlation_id)
        except NotFound as exc:
            # The event points at something Azure no longer has: keep it, do not retry forever.
            return self._reject(event, f"resource not found: {exc}", correlation_id)
        except InvalidInput as exc:
            return self._reject(event, f"Azure returned an unusable document: {exc}", correlation_id)

    def record_run(
        self,
        template_id: str,
        correlation_id: str,
        initiator: Initiator | None = None,
        arm_correlation_id: str | None = None,
    ) -> IntakeResult:
        """Record the outcome of a template's last run, read from Azure."""
        template = self._builder.get_template(template_id)
        status = template.properties.last_run_status
        run_id = run_id_of(template)
        if status is None or run_id is None or not status.is_final:
            # A newer run started since the event, or the run is still going: the reconcile timer
            # records it once Azure reports a final state.
            return IntakeResult("deferred", f"template {template.name} has no finished run to record")
        target = gallery_target(template)
        if target is None:
            return IntakeResult("ignored", f"template {template.name} distributes to no Compute Gallery")
        image_definition_id, run_output_name = target

        version: GalleryImageVersion | ImageTattoo | None = None
        current: tuple[ImageTattoo, str] | _Unread | None = UNREAD
        hinted = False
        if status.succeeded:
            output = self._builder.get_run_output(template.id, run_output_name)
            artifact = output.properties.artifact_id if output else None
            if artifact:
                # A tattoo of this version exists only if the version was read when it was recorded
                # (its own write event, or an earlier delivery of this one): reuse that reading, and
                # hand the row to the write loop instead of reading it twice. This worker usually
                # wrote that row a moment ago (Azure raises the version write first): start from it.
                key = TattooKey.for_version(artifact)
                recent = self._recent.get(key)
                hinted = recent is not None
                current = recent if recent is not None else self._tattoos.get(key)
                version = current[0] if current is not None else self._gallery.get_image_version(artifact)
        tattoo = self._tattoo_from_run(template, run_id, image_definition_id, version, initiator)
        tattoo = tattoo.model_copy(update={"arm_correlation_id": arm_correlation_id, "correlation_id": correlation_id})
        return self._store(tattoo, current, hinted=hinted)

    def record_version(self, version_id: str, correlation_id: str, initiator: Initiator | None = None) -> IntakeResult:
        """Record a gallery image version seen before (or without) its run's outcome."""
        if self._staging_gallery and not normalize(version_id).startswith(self._staging_gallery + "/"):
            return IntakeResult("ignored", "version is not in the staging gallery")
        version = self._gallery.get_image_version(version_id)
        gallery, image, _ = ResourceId.parse(version.id).names
        tattoo = ImageTattoo(
            gallery=gallery,
            image=image,
            status=TattooStatus.BUILDING,
            initiator=Principal.from_initiator(initiator),
            correlation_id=correlation_id,
            **_version_fields(version),
        )
        # A version is new when its write event arrives: insert straight away (the insert is
        # conditional, so a row that exists after all is read and merged on the next attempt).
        return self._store(tattoo, self._recent.get(tattoo.key), hinted=True)

    def _record_version_signal(self, signal: VersionWritten, correlation_id: str) -> IntakeResult:
        return self.record_version(signal.version_id, correlation_id, signal.initiator)

    def _tattoo_from_run(
        self,
        template: ImageTemplate,
        run_id: str,
        image_definition_id: str,
        version: GalleryImageVersion | ImageTattoo | None,
        initiator: Initiator | None,
    ) -> ImageTattoo:
        status = template.properties.last_run_status
        assert status is not None  # checked by the caller
        gallery, image = ResourceId.parse(image_definition_id).names[:2]
        base = BaseImage.from_source(template.properties.source)
        if version is not None:
            verdict, reason = TattooStatus.BUILT, None
        elif status.succeeded:
            verdict, reason = TattooStatus.BUILD_FAILED, "the run reported success but produced no image version"
        else:
            verdict = TattooStatus.BUILD_FAILED
            reason = f"run {status.run_state}" + (f" during {status.run_sub_state}" if status.run_sub_state else "")
            if status.message:
                reason += f": {status.message}"
        if isinstance(version, ImageTattoo):
            fields = _fields_of_recorded_version(version)
        else:
            fields = _version_fields(version) if version is not None else {}
        tags = fields.get("tags") or {}
        return ImageTattoo(
            gallery=gallery,
            image=image,
            status=verdict,
            reason=reason,
            template_id=template.id,
            template_name=template.name,
            run_id=run_id,
            base_image=base,
            os_version=_os_version(tags, base),
            build_started=status.start_time,
            build_finished=status.end_time,
            delta_changes=delta_changes_of(template),
            run_message=status.message or None,
            initiator=Principal.from_initiator(initiator),
            **fields,
        )

    def _store(
        self,
        observed: ImageTattoo,
        known: tuple[ImageTattoo, str] | _Unread | None = UNREAD,
        *,
        hinted: bool = False,
    ) -> IntakeResult:
        """Read-merge-write under the ETag.

        `known` is the row to start from (None: absent): what the caller just read, or with
        `hinted`, a guess (this worker's last write of it, or "new"). Every write is
        conditional, so a wrong guess costs a refused write and a read, never an update lost;
        and "nothing to change" is only concluded from a row read from storage.
        """
        key = observed.key
        for attempt in range(MAX_WRITE_ATTEMPTS):
            if attempt == 0 and not isinstance(known, _Unread):
                current, guessed = known, hinted
            else:
                current, guessed = self._tattoos.get(key), False
            existing, etag = current if current else (None, None)
            now = self._clock()
            merged = merge(existing, observed, now)
            if merged is None:
                assert existing is not None
                if guessed:
                    continue  # confirm against storage
                return IntakeResult("unchanged", "already recorded", key, existing.status)
            event = tattoo_status_event(existing, merged, now) if self._audit else None
            outbox = [self._audit.stage(event)] if self._audit and event else []
            try:
                if etag is None:
                    new_etag = self._tattoos.create(merged, outbox=outbox)
                else:
                    new_etag = self._tattoos.replace(merged, etag, outbox=outbox)
            except Conflict:
                self._recent.forget(key)
                continue  # another instance wrote first: re-read and merge again
            self._recent.put(merged, new_etag)
            drain_or_defer(self._audit, key.partition, outbox)
            log.info(
                "tattoo recorded",
                extra={"tattoo": f"{key.partition}/{key.row}", "status": merged.status.value,
                       "correlation_id": observed.correlation_id},
            )  # fmt: skip
            return IntakeResult("recorded", f"status {merged.status.value}", key, merged.status)
        raise Conflict(f"tattoo {key.partition}/{key.row}: still contended after {MAX_WRITE_ATTEMPTS} attempts")

    def _reject(self, event: Mapping[str, Any], reason: str, correlation_id: str) -> IntakeResult:
        received = self._clock()
        name = self._rejected.keep(dict(event), reason, correlation_id, received)
        if self._audit is not None:
            # Once per kept blob: the record id derives from its (content-addressed) name.
            rejected = input_rejected_event(name, event.get("id"), reason, correlation_id, received)
            self._audit.record_once(rejected_partition(received), rejected)
        log.warning(
            "event rejected: %s", reason,
            extra={"event_id": event.get("id"), "rejected_blob": name, "correlation_id": correlation_id},
        )  # fmt: skip
        return IntakeResult("rejected", reason)


def gallery_target(template: ImageTemplate) -> tuple[str, str] | None:
    """The staging image definition (without any pinned version) and the run output naming it."""
    for distributor in template.properties.distribute:
        if distributor.type.lower() == "sharedimage" and distributor.gallery_image_id:
            parsed = ResourceId.parse(distributor.gallery_image_id)
            definition = parsed if len(parsed.names) == 2 else parsed.parent()
            return definition.raw, distributor.run_output_name
    return None


def _version_fields(version: GalleryImageVersion) -> dict[str, Any]:
    profile = version.properties.publishing_profile
    return {
        "version": version.name,
        "version_id": version.id,
        "target_regions": replication_of(version),
        "exclude_from_latest": profile.exclude_from_latest,
        "published_date": profile.published_date,
        "end_of_life_date": profile.end_of_life_date,
        "tags": dict(version.tags),
    }


def _fields_of_recorded_version(tattoo: ImageTattoo) -> dict[str, Any]:
    """The version facts a stored tattoo already holds, as `_version_fields` would read them."""
    fields = ("version", "version_id", "target_regions", "exclude_from_latest", "published_date", "end_of_life_date")
    return {name: getattr(tattoo, name) for name in fields} | {"tags": dict(tattoo.tags)}


def _os_version(tags: Mapping[str, str], base: BaseImage) -> str | None:
    """A tag the build writes wins (it knows the patched OS); else the resolved base image."""
    for name in ("osVersion", "os_version", "OSVersion"):
        if tags.get(name):
            return tags[name]
    if base.offer:
        return " ".join(part for part in (base.offer, base.sku, base.exact_version or base.version) if part)
    return None
