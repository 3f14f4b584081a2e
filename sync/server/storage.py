"""Where image and model bodies live: a directory, or any S3-compatible store.

Objects are keyed by SHA-256 (``ab/abcdef…``), so storing a body twice is a no-op and a key
always names exactly one content. Bodies reach a store only as a local file whose hash has
already been checked (``sync.server.files``), so neither backend ever holds a whole body in memory:
the directory backend renames the file into place, the S3 backend uploads it in parts from disk.

    file:///srv/kensa/files
    s3://bucket?endpoint=http://127.0.0.1:8333&region=us-east-1&access_key=…&secret_key=…&prefix=p/
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlparse

from sync.errors import StorageError

CHUNK = 1024 * 1024


def object_key(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256}"


class Storage(Protocol):
    description: str

    def exists(self, sha256: str) -> bool: ...

    def put_file(self, sha256: str, path: Path) -> str:
        """Store the (verified) file at ``path`` under its hash; returns the storage path."""
        ...

    def open(self, sha256: str) -> Iterator[bytes]:
        """The body in chunks; raises ``StorageError`` when it is not there."""
        ...

    def close(self) -> None: ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirectoryStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"directory {root}"
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        return self.root / object_key(sha256)

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def put_file(self, sha256: str, path: Path) -> str:
        target = self._path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, target)
        except OSError:
            # Staging on another filesystem: copy beside the target, then rename atomically.
            partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
            shutil.copyfile(path, partial)
            with partial.open("rb") as fh:
                os.fsync(fh.fileno())
            os.replace(partial, target)
        _fsync_dir(target.parent)
        return object_key(sha256)

    def open(self, sha256: str) -> Iterator[bytes]:
        path = self._path(sha256)
        try:
            fh = path.open("rb")
        except FileNotFoundError as exc:
            raise StorageError(f"object {sha256} is missing from {self.description}") from exc
        return _read_chunks(fh)

    def close(self) -> None:
        return None


def _read_chunks(fh: Any) -> Iterator[bytes]:
    with fh:
        while chunk := fh.read(CHUNK):
            yield chunk


class S3Storage:
    """boto3 against AWS S3, MinIO, SeaweedFS or any S3-compatible endpoint."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        prefix: str = "",
    ) -> None:
        try:
            import boto3  # type: ignore[import-untyped]
            from botocore.config import Config  # type: ignore[import-untyped]
        except ImportError as exc:
            raise StorageError("an s3:// storage URL needs boto3 installed") from exc
        self.bucket = bucket
        self.prefix = prefix
        self.description = f"s3 bucket {bucket}" + (f" at {endpoint}" if endpoint else "")
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region or "us-east-1",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            ),
        )
        self._ensure_bucket()

    def _key(self, sha256: str) -> str:
        return self.prefix + object_key(sha256)

    def _ensure_bucket(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError:
            pass
        except BotoCoreError as exc:
            raise StorageError(f"cannot reach {self.description}: {exc}") from exc
        try:
            self._client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise StorageError(f"cannot create {self.description}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot reach {self.description}: {exc}") from exc

    def exists(self, sha256: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(sha256))
            return True
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404 or exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return False
            raise StorageError(f"{self.description}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"{self.description}: {exc}") from exc

    def put_file(self, sha256: str, path: Path) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key(sha256)
        try:
            # upload_file streams from disk, in parts above the multipart threshold.
            self._client.upload_file(str(path), self.bucket, key)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot store {sha256} in {self.description}: {exc}") from exc
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return f"s3://{self.bucket}/{key}"

    def open(self, sha256: str) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=self._key(sha256))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot read {sha256} from {self.description}: {exc}") from exc
        body = answer["Body"]
        return _s3_chunks(body)

    def close(self) -> None:
        self._client.close()


def _s3_chunks(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()


def open_storage(url: str) -> Storage:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return DirectoryStorage(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StorageError(f"storage URL {url!r} names no bucket")
        query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
        return S3Storage(
            parsed.netloc,
            endpoint=query.get("endpoint"),
            region=query.get("region"),
            access_key=query.get("access_key") or os.environ.get("AWS_ACCESS_KEY_ID"),
            secret_key=query.get("secret_key") or os.environ.get("AWS_SECRET_ACCESS_KEY"),
            prefix=query.get("prefix", ""),
        )
    if not parsed.scheme:
        return DirectoryStorage(Path(url))
    raise StorageError(f"unknown storage URL scheme {parsed.scheme!r} (use file:// or s3://)")
