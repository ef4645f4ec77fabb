"""Where the lake's files live: a small Storage protocol, the local folder, and the choice by URL.

``put`` is the sink's durability point: when it returns, the file is complete under its final
name and survives a crash or power loss, and a reader never sees half of it. Locally that is a
temp file in the same folder, fsync, an atomic rename, and an fsync of the folder (and of any
folder it had to create); on S3 a completed PUT (:mod:`~framewatch.processing.sink.s3`).
Every failure is a :class:`StorageError`, an ``OSError``, so the consumer loop retries the
batch as an error of the environment instead of blaming (dead-lettering) its records.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Protocol

from framewatch.errors import FramewatchError
from framewatch.processing.sink.layout import StoredFile
from framewatch.settings import Settings

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"
TEMP_GRACE_S = 3600.0  # a temp file of another host is a crash's leftover after this long


class StorageError(FramewatchError, OSError):
    """The store failed (disk, network, permissions); the batch is retried, never dead-lettered."""


class Storage(Protocol):
    """The four things the sink and its compactor do with files; paths relative to the root."""

    url: str  # where, for logs: never credentials

    def put(self, path: str, data: bytes) -> None:
        """Store *data* at *path*, atomically and durably (replacing a file there)."""

    def get(self, path: str) -> bytes:
        """The bytes stored at *path*."""

    def list(self, prefix: str) -> list[StoredFile]:
        """Every file under the folder *prefix*, recursively."""

    def delete(self, path: str) -> None:
        """Remove *path*; a path that is already gone is fine."""

    def clean_temp(self) -> int:
        """Remove what a crashed writer left half-written; returns how many."""


class LocalStorage:
    """A folder on a local (or mounted) file system."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)
        self._temp_tag = f"{_host()}-{os.getpid()}"

    def put(self, path: str, data: bytes) -> None:
        """Temp file beside the target, fsync, rename over it, fsync the folder."""
        target = self.root / path
        try:
            _make_dirs(target.parent, self.root)
            tmp = target.parent / f".{target.name}.{self._temp_tag}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}"
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)  # atomic: a reader sees the old file or the new one
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
            _fsync_dir(target.parent)  # the rename itself is durable only once its folder is
        except OSError as exc:
            raise StorageError(f"cannot write {target}: {exc}") from exc

    def get(self, path: str) -> bytes:
        """The file's bytes."""
        try:
            return (self.root / path).read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read {self.root / path}: {exc}") from exc

    def list(self, prefix: str) -> list[StoredFile]:
        """Files under *prefix* (temp files included: the caller filters names)."""
        base = self.root / prefix
        out = []
        for dirpath, _, names in os.walk(base):
            for name in names:
                full = Path(dirpath) / name
                with contextlib.suppress(FileNotFoundError):  # removed while listing
                    out.append(StoredFile(full.relative_to(self.root).as_posix(), full.stat().st_size))
        return sorted(out, key=lambda f: f.path)

    def delete(self, path: str) -> None:
        """Unlink the file (gone already is fine)."""
        try:
            (self.root / path).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {self.root / path}: {exc}") from exc

    def clean_temp(self) -> int:
        """Remove temp files of writers that are gone: this host's dead processes (and this very
        pid, a restarted container's), and other hosts' older than TEMP_GRACE_S."""
        removed = 0
        for f in self.list(""):
            if f.name.endswith(TEMP_SUFFIX) and f.name.startswith(".") and self._stale(self.root / f.path):
                with contextlib.suppress(FileNotFoundError):
                    (self.root / f.path).unlink()
                    removed += 1
        return removed

    def _stale(self, temp: Path) -> bool:
        host, _, pid = temp.name[: -len(TEMP_SUFFIX)].rsplit(".", 2)[-2].rpartition("-")
        if host == _host() and pid.isdigit():
            return int(pid) == os.getpid() or not _alive(int(pid))
        try:
            return time.time() - temp.stat().st_mtime > TEMP_GRACE_S
        except FileNotFoundError:
            return False


def _host() -> str:
    """This host's name as a temp file tag (no dots: the tag sits between dots)."""
    return socket.gethostname().replace(".", "_")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _make_dirs(folder: Path, root: Path) -> None:
    """Create *folder* and its missing parents, each new entry made durable in its parent."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        if folder == folder.parent:
            break
        folder = folder.parent
    for new in reversed(missing):
        with contextlib.suppress(FileExistsError):
            new.mkdir()
        if new != root:
            _fsync_dir(new.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_storage(settings: Settings) -> Storage:
    """The store ``sink_url`` names: ``s3://bucket/prefix``, a folder (``file://`` or a path),
    or ``state_dir/lake`` when empty."""
    url = settings.sink_url.strip()
    if url.startswith("s3://"):
        from framewatch.processing.sink.s3 import S3Storage  # boto3 only when it is used

        return S3Storage.from_settings(settings)
    if url.startswith("file://"):
        url = url.removeprefix("file://")
    return LocalStorage(Path(url) if url else settings.state_dir / "lake")
