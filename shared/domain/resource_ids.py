"""Azure Resource Manager ids: parsed once, compared case-insensitively.

ARM treats ids as case-insensitive and real events mix `resourceGroups` and
`resourcegroups`, so every comparison here goes through `normalize`.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import InvalidInput


def normalize(resource_id: str) -> str:
    """The canonical form used for keys and comparisons: lower case, no trailing slash."""
    return resource_id.strip().rstrip("/").lower()


def same_resource(a: str, b: str) -> bool:
    return normalize(a) == normalize(b)


@dataclass(frozen=True)
class ResourceId:
    """A parsed ARM id. `types` and `names` pair up: ('galleries', 'images') / ('g', 'i')."""

    raw: str
    subscription: str
    resource_group: str
    provider: str
    types: tuple[str, ...]
    names: tuple[str, ...]

    @classmethod
    def parse(cls, resource_id: str) -> ResourceId:
        parts = [p for p in resource_id.strip().split("/") if p]
        lowered = [p.lower() for p in parts]
        try:
            if lowered[0] != "subscriptions" or lowered[2] != "resourcegroups" or lowered[4] != "providers":
                raise ValueError
            subscription, resource_group, provider = parts[1], parts[3], parts[5]
            rest = parts[6:]
        except (IndexError, ValueError):
            raise InvalidInput(f"not an Azure resource id: {resource_id!r}") from None
        if not rest or len(rest) % 2:
            raise InvalidInput(f"resource id has no complete type/name path: {resource_id!r}")
        return cls(
            raw=resource_id,
            subscription=subscription,
            resource_group=resource_group,
            provider=provider,
            types=tuple(rest[0::2]),
            names=tuple(rest[1::2]),
        )

    @property
    def full_type(self) -> str:
        """`Microsoft.Compute/galleries/images/versions`, in the id's own case."""
        return "/".join((self.provider, *self.types))

    def is_type(self, full_type: str) -> bool:
        return self.full_type.lower() == full_type.lower()

    @property
    def name(self) -> str:
        return self.names[-1]

    def parent(self) -> ResourceId:
        """The enclosing resource (a version's image definition, an image's gallery)."""
        if len(self.types) < 2:
            raise InvalidInput(f"{self.raw!r} has no parent resource")
        prefix = f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/{self.provider}"
        pairs = "/".join(f"{t}/{n}" for t, n in zip(self.types[:-1], self.names[:-1], strict=True))
        return ResourceId.parse(f"{prefix}/{pairs}")

    def __str__(self) -> str:
        return self.raw


IMAGE_TEMPLATE = "Microsoft.VirtualMachineImages/imageTemplates"
GALLERY = "Microsoft.Compute/galleries"
GALLERY_IMAGE = "Microsoft.Compute/galleries/images"
GALLERY_IMAGE_VERSION = "Microsoft.Compute/galleries/images/versions"
