"""ocpizza-backup's off-site copies against moto's S3 server (real HTTP, signatures v4,
multipart uploads), with a stand-in ``age`` that keeps the encryption's contract
(the age header, recipients, "no identity matched" for a wrong key). The real age
and Debian's boto3 are exercised by molecule/backup."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import textwrap
from pathlib import Path

import pytest
from ocpizza_backup import BackupError, UnknownBackup
from ocpizza_backup.config import Config
from ocpizza_backup.manifest import MANIFEST_FORMAT, backup_files
from ocpizza_backup.offsite import (
    AGE_HEADER,
    fetch,
    list_remote,
    object_keys,
    open_store,
    prune_remote,
    push,
    remote_id,
    sync,
)
from ocpizza_backup.s3store import MIB, expected_etag, part_size_for, read_credentials

BUCKET = "ocpizza-backups"
REGION = "ams3"

# A stand-in for age: "encrypts" to the recipients file (the header, the
# recipients, then the data reversed); decrypts only with an identity whose
# public half is one of them, like age, reading the identity file given.
FAKE_AGE = textwrap.dedent(
    """\
    #!/usr/bin/env python3
    import sys
    args = sys.argv[1:]
    def opt(name):
        return args[args.index(name) + 1]
    HEADER = b"age-encryption.org/v1\\n"
    if "--encrypt" in args:
        recipients = open(opt("--recipients-file"), "rb").read().strip()
        data = open(args[-1], "rb").read()
        open(opt("-o"), "wb").write(HEADER + recipients + b"\\n---\\n" + data[::-1])
    else:
        identity = open(opt("--identity"), "rb").read().strip()
        blob = open(args[-1], "rb").read()
        if not blob.startswith(HEADER):
            sys.exit("age: error: failed to read header")
        recipients, data = blob[len(HEADER):].split(b"\\n---\\n", 1)
        if identity.replace(b"SECRET", b"PUBLIC") not in recipients.split(b"\\n"):
            sys.exit("age: error: no identity matched any of the recipients")
        open(opt("-o"), "wb").write(data[::-1])
    """
)
RIGHT, WRONG = b"AGE-SECRET-KEY-RIGHT", b"AGE-SECRET-KEY-WRONG"


@pytest.fixture(scope="module")
def endpoint() -> str:
    """moto's S3 server (requirements.txt), on a free local port, for this module."""
    moto_server = pytest.importorskip("moto.server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def cfg(tmp_path: Path, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "age").write_text(FAKE_AGE)
    (bin_dir / "age").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    bucket = f"{BUCKET}-{tmp_path.name.lower().replace('_', '-')[-30:]}"
    boto3 = pytest.importorskip("boto3")
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test-access",
        aws_secret_access_key="test-secret",
    ).create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    recipients = tmp_path / "recipients.txt"
    recipients.write_text("# operators\nAGE-PUBLIC-KEY-RIGHT\nAGE-PUBLIC-KEY-OTHER\n")
    credentials = tmp_path / "credentials.conf"
    credentials.write_text("[offsite]\naccess_key = test-access\nsecret_key = test-secret\n")
    credentials.chmod(0o600)
    (tmp_path / "backups").mkdir(mode=0o700)
    return Config(
        dir=tmp_path / "backups",
        offsite_endpoint=endpoint,
        offsite_bucket=bucket,
        offsite_region=REGION,
        offsite_prefix="prod/db1",
        offsite_recipients_file=str(recipients),
        offsite_credentials_file=str(credentials),
        offsite_part_mib=5,
    )


def make_backup(cfg: Config, backup_id: str, data: bytes, kind: str = "scheduled") -> None:
    directory = cfg.dir / backup_id
    directory.mkdir()
    files = backup_files(directory, backup_id)
    files.data.write_bytes(data)
    stamp = backup_id.rsplit("-", 1)[1]
    when = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"
    files.manifest.write_text(
        json.dumps(
            {
                "format": MANIFEST_FORMAT,
                "id": backup_id,
                "kind": kind,
                "database": "oc_pizza",
                "file": files.data.name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "compressed_bytes": len(data),
                "dump_bytes": len(data) * 3,
                "tables": {"pizza": 4},
                "finished_at": when,
            }
        )
    )


def raw_client(cfg: Config):  # a boto3 client
    return open_store(cfg).client


# --------------------------------------------------------------------------
# pure parts


def test_etag_of_a_multipart_upload_is_the_md5_of_the_part_digests():
    parts = [hashlib.md5(b"a" * 10).digest(), hashlib.md5(b"b").digest()]
    assert expected_etag(parts) == hashlib.md5(parts[0] + parts[1]).hexdigest() + "-2"
    with pytest.raises(ValueError):
        expected_etag([])


def test_parts_are_at_least_5_mib_and_at_most_10000():
    assert part_size_for(1, 1) == 5 * MIB
    assert part_size_for(100 * MIB, 16 * MIB) == 16 * MIB
    big = 16 * MIB * 10000 + 1
    assert big / part_size_for(big, 16 * MIB) <= 10000


def test_object_keys_and_their_backup_id():
    cfg = Config(offsite_prefix="prod/db1")
    keys = object_keys(cfg, "oc_pizza-20261129T013000Z")
    assert keys["data"] == "prod/db1/oc_pizza-20261129T013000Z/oc_pizza-20261129T013000Z.sql.gz.age"
    assert {remote_id(cfg, k) for k in keys.values()} == {"oc_pizza-20261129T013000Z"}
    assert remote_id(cfg, "prod/db1/x/y.sql.gz.age") is None
    assert remote_id(cfg, "prod/other/a/a.sql.gz.age") is None


def test_the_settings_file_turns_offsite_copies_on(tmp_path: Path):
    conf = tmp_path / "backup.conf"
    conf.write_text("[backup]\ndir = /b\n")
    assert not Config.load(str(conf)).offsite
    conf.write_text(
        "[backup]\ndir = /b\n[offsite]\nendpoint = https://ams3.example\nbucket = b\n"
        "region = ams3\nprefix = /prod/\npart_mib = 32\n"
    )
    loaded = Config.load(str(conf))
    assert loaded.offsite and loaded.offsite_prefix == "prod" and loaded.offsite_part_mib == 32


def test_credentials_must_be_private_and_complete(tmp_path: Path):
    creds = tmp_path / "c.conf"
    with pytest.raises(BackupError, match="does not exist"):
        read_credentials(str(creds))
    creds.write_text("[offsite]\naccess_key = a\nsecret_key = s\n")
    creds.chmod(0o644)
    with pytest.raises(BackupError, match="private to its owner"):
        read_credentials(str(creds))
    creds.chmod(0o600)
    assert read_credentials(str(creds)).secret_key == "s"
    assert "s" not in repr(read_credentials(str(creds))).replace("Credentials", "")
    creds.write_text("[offsite]\naccess_key = a\n")
    with pytest.raises(BackupError, match="lacks access_key or secret_key"):
        read_credentials(str(creds))


# --------------------------------------------------------------------------
# against the S3 server


def test_a_backup_goes_off_site_encrypted_in_parts_and_comes_back(cfg: Config, tmp_path: Path):
    data = os.urandom(11 * MIB + 7)  # three parts of 5 MiB
    make_backup(cfg, "oc_pizza-20261129T013000Z", data)
    index = push(
        cfg, backup_files(cfg.dir / "oc_pizza-20261129T013000Z", "oc_pizza-20261129T013000Z")
    )
    assert index["objects"]["data"]["etag"].endswith("-3")
    keys = object_keys(cfg, "oc_pizza-20261129T013000Z")
    stored = raw_client(cfg).get_object(Bucket=cfg.offsite_bucket, Key=keys["data"])["Body"].read()
    assert stored.startswith(AGE_HEADER) and data[:64] not in stored
    manifest = raw_client(cfg).get_object(Bucket=cfg.offsite_bucket, Key=keys["manifest"])
    assert b"pizza" not in manifest["Body"].read()
    # No work directory is left beside the backups.
    assert [p.name for p in cfg.dir.iterdir()] == ["oc_pizza-20261129T013000Z"]

    rows = list_remote(cfg)
    assert [(r["id"], r["ok"], r["bytes"]) for r in rows] == [
        ("oc_pizza-20261129T013000Z", True, len(stored))
    ]
    into = cfg.dir / ".incoming-test"
    files = fetch(cfg, "oc_pizza-20261129T013000Z", RIGHT, into)
    assert files.data.read_bytes() == data
    assert json.loads(files.manifest.read_text())["sha256"] == hashlib.sha256(data).hexdigest()
    assert sorted(p.name for p in into.iterdir()) == [files.manifest.name, files.data.name]
    assert stat.S_IMODE(into.stat().st_mode) == 0o700


def test_a_wrong_identity_is_refused(cfg: Config):
    make_backup(cfg, "oc_pizza-20261129T013000Z", b"dump")
    push(cfg, backup_files(cfg.dir / "oc_pizza-20261129T013000Z", "oc_pizza-20261129T013000Z"))
    with pytest.raises(BackupError, match="identity given cannot decrypt"):
        fetch(cfg, "oc_pizza-20261129T013000Z", WRONG, cfg.dir / ".incoming-x")


@pytest.mark.parametrize(
    ("damage", "says"),
    [("truncate", "truncated or replaced"), ("flip", "is corrupt")],
)
def test_a_damaged_remote_object_is_refused_before_decryption(cfg: Config, damage: str, says: str):
    make_backup(cfg, "oc_pizza-20261129T013000Z", b"dump " * 1000)
    push(cfg, backup_files(cfg.dir / "oc_pizza-20261129T013000Z", "oc_pizza-20261129T013000Z"))
    key = object_keys(cfg, "oc_pizza-20261129T013000Z")["data"]
    client = raw_client(cfg)
    blob = client.get_object(Bucket=cfg.offsite_bucket, Key=key)["Body"].read()
    blob = blob[: len(blob) // 2] if damage == "truncate" else blob[:-10] + b"X" * 10
    client.put_object(Bucket=cfg.offsite_bucket, Key=key, Body=blob)
    with pytest.raises(BackupError, match=says):
        fetch(cfg, "oc_pizza-20261129T013000Z", RIGHT, cfg.dir / ".incoming-x")
    assert not (cfg.dir / ".incoming-x" / "oc_pizza-20261129T013000Z.sql.gz").exists()


def test_an_unknown_id_is_refused_naming_the_off_site_ones(cfg: Config):
    make_backup(cfg, "oc_pizza-20261129T013000Z", b"dump")
    push(cfg, backup_files(cfg.dir / "oc_pizza-20261129T013000Z", "oc_pizza-20261129T013000Z"))
    with pytest.raises(UnknownBackup, match="Available off-site: oc_pizza-20261129T013000Z"):
        fetch(cfg, "oc_pizza-19990101T000000Z", RIGHT, cfg.dir / ".incoming-x")


def test_an_upload_that_does_not_verify_fails(cfg: Config, monkeypatch: pytest.MonkeyPatch):
    make_backup(cfg, "oc_pizza-20261129T013000Z", b"dump")
    store = open_store(cfg)
    monkeypatch.setattr(store, "head", lambda key: {"bytes": 1, "etag": "0" * 32})
    with pytest.raises(BackupError, match="does not verify after upload"):
        push(
            cfg,
            backup_files(cfg.dir / "oc_pizza-20261129T013000Z", "oc_pizza-20261129T013000Z"),
            store,
        )


def test_an_unreachable_bucket_fails_the_upload(cfg: Config):
    make_backup(cfg, "oc_pizza-20261129T013000Z", b"dump")
    Path(cfg.offsite_credentials_file).write_text("[offsite]\naccess_key = a\nsecret_key = b\n")
    cfg.offsite_bucket = "no-such-bucket"
    with pytest.raises(BackupError, match="off-site storage: uploading"):
        push(cfg, backup_files(cfg.dir / "oc_pizza-20261129T013000Z", "oc_pizza-20261129T013000Z"))


def test_sync_copies_what_is_missing_then_applies_local_retention_remotely(cfg: Config):
    """Ten daily backups and an unfinished upload; keep 3 daily, 0 weekly: the
    three newest remain off-site, the safety backup never goes there."""
    ids = [f"oc_pizza-202611{d:02d}T013000Z" for d in range(1, 11)]
    for backup_id in ids:
        make_backup(cfg, backup_id, backup_id.encode())
    make_backup(cfg, "oc_pizza-20261110T120000Z", b"safety", kind="pre-restore")
    # A leftover of an interrupted upload, older than everything kept.
    raw_client(cfg).put_object(
        Bucket=cfg.offsite_bucket,
        Key=object_keys(cfg, "oc_pizza-20261001T013000Z")["data"],
        Body=b"x",
    )
    cfg.keep_daily, cfg.keep_weekly = 3, 0
    local = [backup_files(cfg.dir / i, i) for i in sorted(p.name for p in cfg.dir.iterdir())]
    result = sync(cfg, local)
    assert result["pushed"] == ids
    assert sorted(result["pruned"]) == sorted([*ids[:7], "oc_pizza-20261001T013000Z"])
    assert [r["id"] for r in list_remote(cfg)] == ids[7:]
    # A second run has nothing to copy and nothing to prune.
    assert sync(cfg, local[7:]) == {"pushed": [], "pruned": []}
    assert prune_remote(cfg, dry_run=True) == []


def test_archived_binary_logs_go_off_site_encrypted_once_and_follow_retention(cfg):
    from ocpizza_backup.offsite import list_remote, open_store
    from ocpizza_backup.offsite_binlog import push_binlogs, remote_root

    archive = cfg.dir / "binlog"
    archive.mkdir()
    for n in (3, 4, 5):
        name = f"mysql-bin.00000{n}"
        data = b"\xfebin" + f"plain-binlog-{n};".encode() * 40
        (archive / name).write_bytes(data)
        side = {"file": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        (archive / f"{name}.json").write_text(json.dumps(side))
    store = open_store(cfg)
    assert push_binlogs(cfg, None, store)["pushed"] == [f"mysql-bin.00000{n}" for n in (3, 4, 5)]
    keys = store.list(remote_root(cfg))
    assert "prod/db1/binlog/mysql-bin.000004.age" in keys
    blob = store.get_bytes("prod/db1/binlog/mysql-bin.000004.age")
    assert (
        blob is not None
        and blob.startswith(b"age-encryption.org/v1\n")
        and b"plain-binlog" not in blob
    )
    index = json.loads(store.get_bytes("prod/db1/binlog/mysql-bin.000004.json") or b"{}")
    assert index["sha256"] == hashlib.sha256(b"\xfebin" + b"plain-binlog-4;" * 40).hexdigest()
    # Uploaded once; the backups' listing does not take them for backups.
    assert push_binlogs(cfg, None, store)["pushed"] == []
    assert list_remote(cfg, store) == []
    # Retention: those older than the oldest kept backup's binary log go.
    assert push_binlogs(cfg, "mysql-bin.000005", store)["pruned"] == [
        "mysql-bin.000003",
        "mysql-bin.000004",
    ]
    assert sorted(store.list(remote_root(cfg))) == [
        "prod/db1/binlog/mysql-bin.000005.age",
        "prod/db1/binlog/mysql-bin.000005.json",
    ]
