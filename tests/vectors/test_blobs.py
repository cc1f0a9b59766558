"""Blob backends for uploaded files: the same contract on a local directory, on S3 (moto)
and on GCS (a gcp-storage-emulator process)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiservice.config.vectors import FilesSettings
from aiservice.registry import PluginNotFoundError
from aiservice.vectors.blobs import (
    BLOBS,
    BlobStore,
    GCSBlobs,
    LocalBlobs,
    S3Blobs,
    build_blobs,
)

from ..conftest import MakeSettings, app_client
from ..support.servers import free_port
from .conftest import CLIENT_KEY


class BlobContract:
    async def test_put_get_delete(self, blobs: BlobStore) -> None:
        data = bytes(range(256)) * 10
        await blobs.put("file-abc", data)
        assert await blobs.get("file-abc") == data
        await blobs.put("file-abc", b"new")
        assert await blobs.get("file-abc") == b"new"
        await blobs.delete("file-abc")
        assert await blobs.get("file-abc") is None
        await blobs.delete("file-abc")  # absent: no error

    async def test_missing_is_none(self, blobs: BlobStore) -> None:
        assert await blobs.get("file-missing") is None

    @pytest.mark.parametrize("key", ["../etc/passwd", "a/b", "", "x" * 200, "sp ace"])
    async def test_keys_cannot_escape(self, blobs: BlobStore, key: str) -> None:
        with pytest.raises(ValueError, match="invalid blob key"):
            await blobs.put(key, b"x")


class TestLocalBlobs(BlobContract):
    @pytest.fixture
    def blobs(self, tmp_path: Path) -> BlobStore:
        return build_blobs(FilesSettings(directory=str(tmp_path / "files")))

    async def test_no_temporary_file_is_left(self, blobs: BlobStore, tmp_path: Path) -> None:
        await blobs.put("file-1", b"x")
        assert [p.name for p in (tmp_path / "files").iterdir()] == ["file-1"]
        assert isinstance(blobs, LocalBlobs)


class TestS3Blobs(BlobContract):
    @pytest.fixture
    def blobs(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[BlobStore]:
        import boto3
        from moto import mock_aws

        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        with mock_aws():
            boto3.client("s3").create_bucket(Bucket="uploads")
            store = build_blobs(FilesSettings(backend="s3", bucket="uploads", prefix="f/"))
            assert isinstance(store, S3Blobs)
            yield store

    async def test_objects_live_under_the_prefix(self, blobs: BlobStore) -> None:
        await blobs.put("file-9", b"x")
        assert isinstance(blobs, S3Blobs)
        keys = [o["Key"] for o in blobs.client.list_objects_v2(Bucket="uploads")["Contents"]]
        assert keys == ["f/file-9"]


@pytest.fixture(scope="module")
def gcs_emulator() -> Iterator[str]:
    """A real GCS emulator (JSON API over HTTP) on a free loopback port, in memory."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1"]
        + ["--port", str(port), "--in-memory", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read() if proc.stderr else b""
                    pytest.fail(f"gcp-storage-emulator did not start: {err.decode()[-2000:]}")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


class TestGCSBlobs(BlobContract):
    @pytest.fixture
    def blobs(self, gcs_emulator: str) -> BlobStore:
        bucket = f"uploads-{uuid.uuid4().hex[:12]}"  # one bucket per test: no shared state
        settings = FilesSettings(
            backend="gcs", bucket=bucket, prefix="f/", emulator_endpoint=gcs_emulator
        )
        store = build_blobs(settings)
        assert isinstance(store, GCSBlobs)
        store.client.create_bucket(bucket)
        return store

    async def test_objects_live_under_the_prefix(self, blobs: BlobStore) -> None:
        await blobs.put("file-9", b"x")
        assert isinstance(blobs, GCSBlobs)
        names = [b.name for b in blobs.client.list_blobs(blobs.bucket)]
        assert names == ["f/file-9"]

    async def test_missing_bucket_is_an_error_not_absence(self, gcs_emulator: str) -> None:
        from google.api_core.exceptions import NotFound

        store = build_blobs(
            FilesSettings(backend="gcs", bucket="no-such-bucket", emulator_endpoint=gcs_emulator)
        )
        with pytest.raises(NotFound):
            await store.put("file-1", b"x")


async def test_uploads_through_the_api_land_in_the_gcs_bucket(
    gcs_emulator: str, make_settings: MakeSettings, vector_config: dict[str, Any]
) -> None:
    bucket = f"api-{uuid.uuid4().hex[:12]}"
    vector_config["vectors"]["files"] = {
        "backend": "gcs",
        "bucket": bucket,
        "emulator_endpoint": gcs_emulator,
    }
    settings = make_settings(vector_config)
    store = build_blobs(settings.vectors.files)
    assert isinstance(store, GCSBlobs)
    store.client.create_bucket(bucket)
    auth = {"authorization": f"Bearer {CLIENT_KEY}"}
    async with app_client(settings) as http:
        answer = await http.post(
            "/v1/files",
            headers=auth,
            files={"file": ("notes.txt", b"stored in gcs")},
            data={"purpose": "assistants"},
        )
        assert answer.status_code == 200, answer.text
        file_id = answer.json()["id"]
        names = [b.name for b in store.client.list_blobs(bucket)]
        assert names == [f"aiservice/files/{file_id}"]
        assert await store.get(file_id) == b"stored in gcs"
        assert (await http.delete(f"/v1/files/{file_id}", headers=auth)).status_code == 200
        assert list(store.client.list_blobs(bucket)) == []


def test_unknown_backend_and_missing_bucket() -> None:
    with pytest.raises(PluginNotFoundError):
        build_blobs(FilesSettings(backend="ftp"))
    with pytest.raises(ValueError, match="bucket"):
        BLOBS.get("s3")(FilesSettings(backend="s3"))
    with pytest.raises(ValueError, match="bucket"):
        BLOBS.get("gcs")(FilesSettings(backend="gcs"))
