"""S3-compatible object storage (DigitalOcean Spaces): upload, check, download, list, delete.

The client is boto3 (Debian's ``python3-boto3``), imported only when off-site
copies are on. Uploads send a Content-MD5 with the object (one PUT) or with
each part (multipart, above ``part_size``): the server refuses a body that
does not match it, and the object's ETag, which the server computes from what
it stored, is recomputed here from those MD5s and compared after the upload,
with the object's size. Signatures are v4; addressing is path-style (Spaces
and every S3-compatible server accept it).

The access and secret keys come from a root-only file (never from the command
line or the environment, never logged)::

    [offsite]
    access_key = ...
    secret_key = ...
"""

from __future__ import annotations

import base64
import configparser
import dataclasses
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ocpizza_backup import BackupError
from ocpizza_backup.common import CHUNK

MIB = 1 << 20
# S3's smallest part (except the last one) and largest number of parts.
MIN_PART = 5 * MIB
MAX_PARTS = 10000


@dataclasses.dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str

    def __repr__(self) -> str:  # never print a secret by accident
        return "Credentials(<hidden>)"


def read_credentials(path: str) -> Credentials:
    """The access and secret keys from a root-only file; refuse anything else."""
    file = Path(path)
    try:
        info = file.stat()
    except OSError:
        raise BackupError(
            f"off-site credentials file {file} does not exist (the role writes it from "
            "vault_mysql_backup_offsite_access_key and vault_mysql_backup_offsite_secret_key)"
        ) from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) or info.st_uid != os.getuid():
        raise BackupError(f"off-site credentials file {file} must be private to its owner (0600)")
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(file, encoding="utf-8")
    access = parser.get("offsite", "access_key", fallback="").strip()
    secret = parser.get("offsite", "secret_key", fallback="").strip()
    if not access or not secret:
        raise BackupError(f"off-site credentials file {file} lacks access_key or secret_key")
    return Credentials(access, secret)


def expected_etag(part_md5s: list[bytes]) -> str:
    """The ETag S3 gives an object uploaded with these parts' MD5 digests:
    the MD5 itself for one PUT (an empty list is not allowed: see single_etag),
    MD5 of the concatenated digests plus '-<count>' for a multipart upload."""
    if not part_md5s:
        raise ValueError("a multipart upload has at least one part")
    return hashlib.md5(b"".join(part_md5s)).hexdigest() + f"-{len(part_md5s)}"


def part_size_for(size: int, wanted: int) -> int:
    """The part size to use: at least S3's minimum, and few enough parts."""
    part = max(wanted, MIN_PART)
    while size > part * MAX_PARTS:
        part *= 2
    return part


def _chunks(path: Path, part: int) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while block := fh.read(part):
            yield block


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


class Store:
    """One bucket of an S3-compatible service, through boto3."""

    def __init__(
        self, endpoint: str, region: str, bucket: str, credentials: Credentials, part_size: int
    ) -> None:
        try:
            # Imported here: only hosts with off-site copies need boto3.
            import boto3
            from botocore.config import Config as BotoConfig
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError:
            raise BackupError("off-site copies need boto3 (Debian package python3-boto3)") from None
        options: dict[str, Any] = {
            "signature_version": "s3v4",
            "s3": {"addressing_style": "path"},
            "retries": {"max_attempts": 5, "mode": "standard"},
            "connect_timeout": 20,
            "read_timeout": 120,
        }
        try:
            # botocore >= 1.36 adds CRC checksums to every upload by default,
            # which some S3-compatible services refuse: only when required.
            boto_config = BotoConfig(
                **options,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
        except TypeError:  # older botocore (Debian 12's 1.29) has no such option
            boto_config = BotoConfig(**options)
        self.bucket = bucket
        self.part_size = part_size
        self.errors: tuple[type[Exception], ...] = (BotoCoreError, ClientError)
        self._client_error = ClientError
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=credentials.access_key,
            aws_secret_access_key=credentials.secret_key,
            config=boto_config,
        )

    def _fail(self, what: str, exc: Exception) -> BackupError:
        return BackupError(f"off-site storage: {what} failed: {exc}")

    def is_missing(self, exc: Exception) -> bool:
        """Whether a client error says the object does not exist."""
        if not isinstance(exc, self._client_error):
            return False
        code = str(exc.response.get("Error", {}).get("Code", ""))  # type: ignore[attr-defined]
        return code in ("404", "NoSuchKey", "NotFound")

    def head(self, key: str) -> dict[str, Any] | None:
        """Size and ETag of an object, None when it does not exist."""
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=key)
        except self.errors as exc:
            if self.is_missing(exc):
                return None
            raise self._fail(f"reading s3://{self.bucket}/{key}", exc) from None
        return {"bytes": int(resp["ContentLength"]), "etag": str(resp["ETag"]).strip('"')}

    def upload(self, path: Path, key: str) -> dict[str, Any]:
        """Upload a file, then check the stored object's size and ETag."""
        size = path.stat().st_size
        part = part_size_for(size, self.part_size)
        try:
            if size <= part:
                body = path.read_bytes()
                digest = hashlib.md5(body).digest()
                self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, ContentMD5=_b64(digest)
                )
                etag = digest.hex()
            else:
                etag = self._multipart(path, key, part)
        except self.errors as exc:
            raise self._fail(f"uploading {path.name} to s3://{self.bucket}/{key}", exc) from None
        stored = self.head(key)
        if stored is None or stored["bytes"] != size or stored["etag"] != etag:
            raise BackupError(
                f"off-site copy s3://{self.bucket}/{key} does not verify after upload: "
                f"{stored or 'missing'}; expected {size} bytes, ETag {etag}"
            )
        return {"key": key, "bytes": size, "etag": etag}

    def _multipart(self, path: Path, key: str, part: int) -> str:
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        digests: list[bytes] = []
        parts = []
        try:
            for number, block in enumerate(_chunks(path, part), start=1):
                digest = hashlib.md5(block).digest()
                resp = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=block,
                    ContentMD5=_b64(digest),
                )
                digests.append(digest)
                parts.append({"ETag": resp["ETag"], "PartNumber": number})
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except self.errors:
                pass
            raise
        return expected_etag(digests)

    def download(self, key: str, dest: Path) -> tuple[int, str]:
        """Stream an object into a new private file; its size and sha256."""
        hasher = hashlib.sha256()
        size = 0
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key)
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                for block in iter(lambda: resp["Body"].read(CHUNK), b""):
                    hasher.update(block)
                    size += len(block)
                    out.write(block)
        except self.errors as exc:
            raise self._fail(f"downloading s3://{self.bucket}/{key}", exc) from None
        return size, hasher.hexdigest()

    def get_bytes(self, key: str, limit: int = 1 << 20) -> bytes | None:
        """A small object's content, None when it does not exist."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key)
            data: bytes = resp["Body"].read(limit + 1)
        except self.errors as exc:
            if self.is_missing(exc):
                return None
            raise self._fail(f"reading s3://{self.bucket}/{key}", exc) from None
        if len(data) > limit:
            raise BackupError(f"s3://{self.bucket}/{key} is larger than {limit} bytes")
        return data

    def list(self, prefix: str) -> dict[str, int]:
        """Every object under a prefix, with its size."""
        found: dict[str, int] = {}
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    found[obj["Key"]] = int(obj["Size"])
        except self.errors as exc:
            raise self._fail(f"listing s3://{self.bucket}/{prefix}", exc) from None
        return found

    def delete(self, keys: list[str]) -> None:
        """Delete objects (1000 per request)."""
        try:
            for start in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[start : start + 1000]]
                resp = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
                if resp.get("Errors"):
                    raise BackupError(f"off-site storage: deleting failed: {resp['Errors'][:3]}")
        except self.errors as exc:
            raise self._fail("deleting", exc) from None
