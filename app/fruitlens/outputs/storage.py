"""Direct object operations (small files, existence checks, deletes) on local folders or S3.

Spark reads and writes the datasets; this module handles the few objects Spark should not:
run.json, the client's CSV, plots, logs. Every S3 write carries the configured server-side
encryption, so "encrypted at rest" holds for boto3 writes as it does for s3a's.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse

from fruitlens import checksum, paths
from fruitlens.config import Config
from fruitlens.errors import UsageError


class StorageError(UsageError):
    pass


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise StorageError(f"{uri!r} names no bucket")
        return cls(parsed.netloc, parsed.path.lstrip("/"))

    @property
    def prefix(self) -> str:
        return self.key.rstrip("/") + "/" if self.key else ""


def local_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://").removeprefix("file:"))


def _replace_local(target: Path, write: Callable[[Path], object]) -> None:
    """Write beside the target, then rename: readers see the old file or the new, never half.
    The partial file is this process's own: two writers of one target under one name renamed
    each other's half-written file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    write(partial)
    partial.replace(target)


@contextmanager
def s3_errors(uri: str, endpoint: str | None) -> Iterator[None]:
    """S3 failures a user fixes (no such bucket, no access, no route to the endpoint) as one
    StorageError naming the URI, instead of a botocore trace."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            bucket = S3Location.parse(uri).bucket
            raise StorageError(f"{uri}: bucket {bucket!r} does not exist") from exc
        if code in {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
            raise StorageError(f"{uri}: access denied ({code}); check the credentials") from exc
        raise
    except EndpointConnectionError as exc:
        where = endpoint or "AWS S3"
        raise StorageError(f"{uri}: S3 endpoint {where} cannot be reached") from exc
    except NoCredentialsError as exc:
        raise StorageError(f"{uri}: no AWS credentials found (environment, profile, IRSA)") from exc


class ListedFile(NamedTuple):
    uri: str  # a local path or an s3a:// URI
    relative: str  # to the folder/prefix listed, with "/" separators
    size: int  # bytes


class Storage:
    """One handle for both worlds; built from the Config so S3 settings are never re-derived."""

    def __init__(self, config: Config) -> None:
        self.config = config

    @cached_property
    def s3(self) -> Any:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config as BotoConfig

        # Stores other than AWS reject the SDK's newer default checksums (REFERENCE.md).
        os.environ.setdefault("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
        os.environ.setdefault("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
        unsigned = {"signature_version": UNSIGNED} if self.config.s3_anonymous else {}
        boto_config = BotoConfig(
            **unsigned,
            region_name=self.config.region,
            s3={"addressing_style": "path" if self.config.s3_endpoint else "auto"},
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
        )
        return boto3.client("s3", endpoint_url=self.config.s3_endpoint, config=boto_config)

    def encryption_args(self) -> dict[str, str]:
        sse = self.config.effective_sse
        if sse == "kms":
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": str(self.config.sse_kms_key)}
        if sse == "s3":
            return {"ServerSideEncryption": "AES256"}
        return {}

    # --- reading ------------------------------------------------------------------------
    def exists(self, uri: str) -> bool:
        if not paths.is_s3(uri):
            return local_path(uri).exists()
        location = S3Location.parse(uri)
        if not location.key:
            return self.bucket_exists(location.bucket)
        return any(True for _ in self.list_keys(uri, limit=1)) or self.object_exists(location)

    def has_children(self, uri: str) -> bool:
        if not paths.is_s3(uri):
            folder = local_path(uri)
            return folder.is_dir() and any(folder.iterdir())
        # "folder/" marker objects (console-made folders) hold nothing: skip them.
        return any(not key.endswith("/") for key in self.list_keys(uri))

    def bucket_exists(self, bucket: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_bucket(Bucket=bucket)
        except ClientError:
            return False
        return True

    def object_exists(self, location: S3Location) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_object(Bucket=location.bucket, Key=location.key)
        except ClientError:
            return False
        return True

    def list_keys(self, uri: str, limit: int | None = None) -> Iterator[str]:
        """Keys (as s3a:// URIs) under a prefix; used for checks and deletes, never to read data."""
        for key_uri, _ in self._list_objects(uri, limit):
            yield key_uri

    def _list_objects(self, uri: str, limit: int | None = None) -> Iterator[tuple[str, int]]:
        """(s3a:// URI, size in bytes) of each object under a prefix, as S3's LIST gives them."""
        location = S3Location.parse(uri)
        paginator = self.s3.get_paginator("list_objects_v2")
        seen = 0
        with s3_errors(uri, self.config.s3_endpoint):
            for page in paginator.paginate(Bucket=location.bucket, Prefix=location.prefix):
                for item in page.get("Contents", []):
                    yield f"s3a://{location.bucket}/{item['Key']}", int(item["Size"])
                    seen += 1
                    if limit is not None and seen >= limit:
                        return

    def list_children(self, uri: str) -> list[str]:
        """Names directly under a folder/prefix (files and sub-folders), sorted.

        Used by the output commit (commit.OutputCommit) to find versions a failed run left.
        """
        if not paths.is_s3(uri):
            folder = local_path(uri)
            return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        location = S3Location.parse(uri)
        paginator = self.s3.get_paginator("list_objects_v2")
        names: set[str] = set()
        for page in paginator.paginate(
            Bucket=location.bucket, Prefix=location.prefix, Delimiter="/"
        ):
            for common in page.get("CommonPrefixes", []):
                names.add(common["Prefix"][len(location.prefix) :].rstrip("/"))
            for item in page.get("Contents", []):
                names.add(item["Key"][len(location.prefix) :])
        return sorted(name for name in names if name)

    def list_files(self, uri: str, follow_links: bool = False) -> Iterator[ListedFile]:
        """Every object under a folder/prefix, sorted, with its size from the listing itself
        (S3's LIST returns it; locally a stat): no request per object. `follow_links`: into
        local folder links too, as Spark's listing does (the caller has refused loops)."""
        if paths.is_s3(uri):
            root = S3Location.parse(uri)
            for key_uri, size in self._list_objects(uri):
                key = S3Location.parse(key_uri).key
                relative = key[len(root.prefix) :]
                if relative and not key.endswith("/"):
                    yield ListedFile(key_uri, relative, size)
            return
        base = local_path(uri)
        for dirpath, dirnames, filenames in os.walk(base, followlinks=follow_links):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                relative = os.path.relpath(full, base).replace(os.sep, "/")
                yield ListedFile(full, relative, os.path.getsize(full))

    def sha256(self, uri: str) -> str | None:
        """SHA-256 of an object's bytes (an image's content id); None if it is gone or a folder."""
        try:
            if not self.exists(uri) or (not paths.is_s3(uri) and local_path(uri).is_dir()):
                return None
            return checksum.sha256(self.read_bytes(uri))
        except Exception:
            return None

    def read_bytes(self, uri: str, limit: int | None = None) -> bytes:
        """A file's bytes, or its first `limit` bytes (one ranged GET on S3)."""
        if not paths.is_s3(uri):
            with local_path(uri).open("rb") as file:
                return file.read(-1 if limit is None else limit)
        location = S3Location.parse(uri)
        ranged = {} if limit is None else {"Range": f"bytes=0-{limit - 1}"}
        response = self.s3.get_object(Bucket=location.bucket, Key=location.key, **ranged)
        return response["Body"].read()

    def presigned_url(self, uri: str, expires_in_s: int, content_type: str) -> str:
        """A time-limited GET link to one private object (the object itself stays private)."""
        location = S3Location.parse(uri)
        return self.s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": location.bucket,
                "Key": location.key,
                "ResponseContentType": content_type,
            },
            ExpiresIn=expires_in_s,
        )

    def download(self, uri: str, destination: Path) -> Path:
        destination.parent.mkdir(parents=True, exist_ok=True)
        if paths.is_s3(uri):
            location = S3Location.parse(uri)
            self.s3.download_file(location.bucket, location.key, str(destination))
        else:
            shutil.copyfile(local_path(uri), destination)
        return destination

    # --- writing ------------------------------------------------------------------------
    def write_bytes(
        self, uri: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        if not paths.is_s3(uri):
            _replace_local(local_path(uri), lambda partial: partial.write_bytes(data))
            return
        location = S3Location.parse(uri)
        self.s3.put_object(
            Bucket=location.bucket,
            Key=location.key,
            Body=data,
            ContentType=content_type,
            **self.encryption_args(),
        )

    def upload(
        self, source: Path, uri: str, content_type: str = "application/octet-stream"
    ) -> None:
        """Stream a local file up (multipart for large ones) without loading it in memory."""
        if not paths.is_s3(uri):
            _replace_local(local_path(uri), lambda partial: shutil.copyfile(source, partial))
            return
        location = S3Location.parse(uri)
        extra = {"ContentType": content_type, **self.encryption_args()}
        self.s3.upload_file(str(source), location.bucket, location.key, ExtraArgs=extra)

    def delete_tree(self, uri: str) -> int:
        if not paths.is_s3(uri):
            target = local_path(uri)
            if target.is_dir():
                count = sum(1 for _ in target.rglob("*"))
                shutil.rmtree(target)
                return count
            if target.exists():
                target.unlink()
                return 1
            return 0
        keys = list(self.list_keys(uri))
        location = S3Location.parse(uri)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": S3Location.parse(key).key} for key in keys[start : start + 1000]]
            self.s3.delete_objects(Bucket=location.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def delete_object(self, uri: str) -> bool:
        """Delete one object (file); False when there was none."""
        if paths.is_s3(uri):
            location = S3Location.parse(uri)
            if not self.object_exists(location):
                return False
            self.s3.delete_object(Bucket=location.bucket, Key=location.key)
            return True
        target = local_path(uri)
        if target.is_file():
            target.unlink()
            return True
        return False

    def lifecycle_rules(self, bucket: str) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules ([] when it has none)."""
        from botocore.exceptions import ClientError

        try:
            answer = self.s3.get_bucket_lifecycle_configuration(Bucket=bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NoSuchLifecycleConfiguration":
                return []
            if code in {"NoSuchBucket", "404"}:
                raise StorageError(f"bucket {bucket!r} does not exist") from exc
            raise
        return list(answer.get("Rules", []))

    def put_lifecycle_rules(self, bucket: str, rules: list[dict[str, Any]]) -> None:
        """Replace the bucket's lifecycle configuration with these rules."""
        self.s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": rules}
        )

    def abort_multipart_uploads(self, uri: str) -> int:
        """Abort unfinished multipart uploads under a prefix (what a killed s3a writer leaves:
        the magic committer's pending uploads are invisible, but they are stored and billed)."""
        if not paths.is_s3(uri):
            return 0
        location = S3Location.parse(uri)
        paginator = self.s3.get_paginator("list_multipart_uploads")
        aborted = 0
        for page in paginator.paginate(Bucket=location.bucket, Prefix=location.prefix):
            for upload in page.get("Uploads", []):
                self.s3.abort_multipart_upload(
                    Bucket=location.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                aborted += 1
        return aborted
