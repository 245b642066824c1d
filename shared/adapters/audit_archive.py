"""Read (and, for the sealer, write-once) access to the audit archive, wherever a copy lives.

Two places hold an archive with the same relative paths (docs/audit-format.md section 1): the
Blob container itself, and a local directory made with `az storage blob download-batch`. The
verifier reads either through `ArchiveReader`; the sealer also writes digests and keys, never
replacing anything (`ArchiveStore.write_if_absent`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from shared.errors import InvalidInput, NotFound, UpstreamError

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

CHUNK_SIZE = 8 * 1024 * 1024


@dataclass(frozen=True)
class ArchiveEntry:
    path: str
    size: int


class ArchiveReader(Protocol):
    def list_entries(self, prefix: str) -> list[ArchiveEntry]:
        """Every file whose path starts with `prefix`, sorted by path."""
        ...

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes [offset, offset + length) (to the end when length is None); NotFound when absent."""
        ...

    def read_chunks(self, path: str, length: int | None = None, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The first `length` bytes (all when None) in chunks; NotFound when absent."""
        ...


class ArchiveStore(ArchiveReader, Protocol):
    def write_if_absent(self, path: str, data: bytes, content_type: str) -> bool:
        """Create `path` with `data`; False (and nothing written) when it already exists."""
        ...


class LocalDirectoryArchive:
    """An archive copy in a directory: `ROOT/v1/...`. Picklable, so verifier workers can share it."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InvalidInput(f"{self.root} is not a directory")

    def list_entries(self, prefix: str) -> list[ArchiveEntry]:
        base = self.root / prefix.rpartition("/")[0]
        entries = []
        for directory, subdirectories, files in os.walk(base):
            subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
            for name in files:
                if name.startswith("."):  # our own temporary files, editor droppings
                    continue
                full = Path(directory, name)
                path = full.relative_to(self.root).as_posix()
                if path.startswith(prefix):
                    entries.append(ArchiveEntry(path, full.stat().st_size))
        return sorted(entries, key=lambda entry: entry.path)

    def list_names(self, prefix: str) -> list[str]:
        return [entry.path for entry in self.list_entries(prefix)]

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        with self._open(path) as handle:
            handle.seek(offset)
            return handle.read() if length is None else handle.read(length)

    def read_chunks(self, path: str, length: int | None = None, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        with self._open(path) as handle:
            remaining = length
            while remaining is None or remaining > 0:
                chunk = handle.read(chunk_size if remaining is None else min(chunk_size, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def write_if_absent(self, path: str, data: bytes, content_type: str) -> bool:
        target = self._file(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
            os.chmod(temporary, 0o644)
            # A hard link is atomic and fails when the name exists: create-if-absent, as on Blob.
            os.link(temporary, target)
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        return True

    def _file(self, path: str) -> Path:
        if path.startswith("/") or ".." in path.split("/"):
            raise InvalidInput(f"archive path {path!r} escapes the archive")
        return self.root / path

    def _open(self, path: str) -> BinaryIO:
        try:
            return self._file(path).open("rb")
        except FileNotFoundError as exc:
            raise NotFound(f"{path} is not in the archive") from exc


class BlobContainerArchive:
    """The archive's Blob container (or any container with the same layout)."""

    def __init__(self, container: ContainerClient) -> None:
        self._container = container

    def list_entries(self, prefix: str) -> list[ArchiveEntry]:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            blobs = [ArchiveEntry(b.name, int(b.size)) for b in self._container.list_blobs(name_starts_with=prefix)]
        except ResourceNotFoundError as exc:
            raise NotFound(f"container {self._container.container_name!r} does not exist") from exc
        except AzureError as exc:
            raise UpstreamError(f"listing {prefix!r} in the audit container: {type(exc).__name__}") from exc
        return sorted(blobs, key=lambda entry: entry.path)

    def list_names(self, prefix: str) -> list[str]:
        return [entry.path for entry in self.list_entries(prefix)]

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        return b"".join(self._download(path, offset, length))

    def read_chunks(self, path: str, length: int | None = None, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        # The SDK's downloader fetches in ranged GETs of its own size; chunk_size is a hint for local copies.
        yield from self._download(path, 0, length)

    def write_if_absent(self, path: str, data: bytes, content_type: str) -> bool:
        from azure.core.exceptions import AzureError, ResourceExistsError
        from azure.storage.blob import ContentSettings

        try:
            # A block blob with overwrite=False is sent with If-None-Match: *, so it never replaces.
            self._container.upload_blob(
                path, data, overwrite=False, content_settings=ContentSettings(content_type=content_type)
            )
        except ResourceExistsError:
            return False
        except AzureError as exc:
            raise UpstreamError(f"writing {path} to the audit container: {type(exc).__name__}") from exc
        return True

    def _download(self, path: str, offset: int, length: int | None) -> Iterator[bytes]:
        from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

        if length == 0:
            return
        try:
            yield from self._container.download_blob(path, offset=offset, length=length).chunks()
        except ResourceNotFoundError as exc:
            raise NotFound(f"{path} is not in the archive") from exc
        except HttpResponseError as exc:
            if exc.status_code == 416:  # a range starting at or past the end: nothing there
                return
            raise UpstreamError(f"reading {path} from the audit container: {type(exc).__name__}") from exc
        except AzureError as exc:
            raise UpstreamError(f"reading {path} from the audit container: {type(exc).__name__}") from exc
