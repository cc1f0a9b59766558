"""Where uploaded files' bytes live: a tiny blob protocol, a local directory, S3, GCS.

Keys are file ids (``file-<hex>``), which the service generates: no caller-chosen path
ever reaches the file system or a bucket key.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..registry import Registry

if TYPE_CHECKING:
    from ..config.vectors import FilesSettings

__all__ = ["BLOBS", "BlobStore", "GCSBlobs", "LocalBlobs", "S3Blobs", "build_blobs"]

_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def _checked(key: str) -> str:
    if not _KEY.match(key):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes | None:
        """The bytes, or ``None`` if absent."""
        ...

    async def delete(self, key: str) -> None:
        """No error if absent."""
        ...


class LocalBlobs:
    """One file per key in a directory; written to a temporary name, then renamed, so a
    crash never leaves a half-written blob under a real key."""

    def __init__(self, cfg: FilesSettings) -> None:
        self.root = Path(cfg.directory)

    def _put(self, key: str, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / _checked(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def _get(self, key: str) -> bytes | None:
        try:
            return (self.root / _checked(key)).read_bytes()
        except FileNotFoundError:
            return None

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, key, data)

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self._get, key)

    async def delete(self, key: str) -> None:
        (self.root / _checked(key)).unlink(missing_ok=True)


class S3Blobs:
    """Objects ``<prefix><key>`` in ``files.bucket`` (boto3, ``pip install 'aiservice[aws]'``)."""

    def __init__(self, cfg: FilesSettings) -> None:
        import boto3

        if not cfg.bucket:
            raise ValueError("vectors.files.bucket is required for the s3 backend")
        self.bucket = cfg.bucket
        self.prefix = cfg.prefix
        self.client: Any = boto3.client("s3")

    def _get(self, key: str) -> bytes | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.prefix + _checked(key))
        except self.client.exceptions.NoSuchKey:
            return None
        data: bytes = answer["Body"].read()
        return data

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(
            self.client.put_object, Bucket=self.bucket, Key=self.prefix + _checked(key), Body=data
        )

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self._get, key)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(
            self.client.delete_object, Bucket=self.bucket, Key=self.prefix + _checked(key)
        )


class GCSBlobs:
    """Objects ``<prefix><key>`` in ``files.bucket`` on Google Cloud Storage
    (google-cloud-storage, ``pip install 'aiservice[gcp]'``).

    Credentials are Application Default Credentials (the attached service account on
    Cloud Run). ``files.emulator_endpoint`` points the client at an emulator instead, with
    anonymous credentials: an explicit setting rather than ``STORAGE_EMULATOR_HOST``, so
    the configuration file alone says where the bytes go.
    """

    def __init__(self, cfg: FilesSettings) -> None:
        import google.cloud.storage as storage

        if not cfg.bucket:
            raise ValueError("vectors.files.bucket is required for the gcs backend")
        # Object calls need no project; ``project=None`` skips project discovery, which
        # fails on machines whose credentials carry none.
        if cfg.emulator_endpoint:
            from google.auth.credentials import AnonymousCredentials

            client = storage.Client(
                project=None,
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                client_options={"api_endpoint": cfg.emulator_endpoint},
            )
        else:
            client = storage.Client(project=None)
        self.client: Any = client
        self.bucket: Any = client.bucket(cfg.bucket)  # a handle: no request is made
        self.prefix = cfg.prefix

    def _blob(self, key: str) -> Any:
        return self.bucket.blob(self.prefix + _checked(key))

    def _get(self, blob: Any) -> bytes | None:
        from google.api_core.exceptions import NotFound

        try:
            data: bytes = blob.download_as_bytes()
        except NotFound:
            return None
        return data

    def _delete(self, blob: Any) -> None:
        from google.api_core.exceptions import NotFound

        try:
            blob.delete()
        except NotFound:
            pass

    async def put(self, key: str, data: bytes) -> None:
        blob = self._blob(key)
        await asyncio.to_thread(
            blob.upload_from_string, data, content_type="application/octet-stream"
        )

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self._get, self._blob(key))

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, self._blob(key))


BlobFactory = Callable[["FilesSettings"], BlobStore]

BLOBS: Registry[BlobFactory] = Registry("blob backend", group="aiservice.blobs")
BLOBS.register("local", "aiservice.vectors.blobs:LocalBlobs")
BLOBS.register("s3", "aiservice.vectors.blobs:S3Blobs", "pip install 'aiservice[aws]'")
BLOBS.register("gcs", "aiservice.vectors.blobs:GCSBlobs", "pip install 'aiservice[gcp]'")


def build_blobs(cfg: FilesSettings) -> BlobStore:
    return BLOBS.get(cfg.backend)(cfg)
