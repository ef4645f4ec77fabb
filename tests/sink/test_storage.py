"""The lake's stores: which one a URL picks, atomic local writes, and what a crash leaves behind
cleaned on start (only what belongs to dead writers)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from framewatch.processing.sink.layout import encode_watch, parse_batch_name
from framewatch.processing.sink.s3 import S3Storage, split_url
from framewatch.processing.sink.storage import LocalStorage, StorageError, open_storage
from framewatch.settings import Settings


def test_the_url_picks_the_store(tmp_path: Path) -> None:
    assert isinstance(open_storage(Settings(state_dir=tmp_path)), LocalStorage)
    assert open_storage(Settings(state_dir=tmp_path)).url == str(tmp_path / "lake")
    assert open_storage(Settings(sink_url=f"file://{tmp_path}/x")).url == f"{tmp_path}/x"
    s3 = open_storage(Settings(sink_url="s3://bucket/some/prefix/", sink_s3_endpoint="http://127.0.0.1:1"))
    assert isinstance(s3, S3Storage) and (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    assert split_url("s3://b") == ("b", "")
    with pytest.raises(StorageError):
        split_url("s3:///prefix")


def test_names_follow_the_contract() -> None:
    assert encode_watch("scs") == "scs" and encode_watch("a b/ä:~") == "a%20b%2F%C3%A4%3A%7E"
    assert parse_batch_name("b-00003-00000000000000000010-00000000000000000020.parquet") == (3, 10, 20)
    assert parse_batch_name(".b-00003-1-2.parquet.host-1.ab.tmp") is None


def test_a_put_leaves_only_the_file_and_replaces_it_whole(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put("t/date=2026-11-26/watch=a/b-1.parquet", b"one")
    store.put("t/date=2026-11-26/watch=a/b-1.parquet", b"two")
    assert [(f.path, f.size) for f in store.list("t")] == [("t/date=2026-11-26/watch=a/b-1.parquet", 3)]
    assert store.get("t/date=2026-11-26/watch=a/b-1.parquet") == b"two"
    store.delete("t/date=2026-11-26/watch=a/b-1.parquet")
    store.delete("t/date=2026-11-26/watch=a/b-1.parquet")  # gone already: fine
    assert store.list("t") == []
    with pytest.raises(StorageError):
        store.get("t/missing.parquet")


def test_start_cleans_temp_files_of_dead_writers_only(tmp_path: Path) -> None:
    host = socket.gethostname().replace(".", "_")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = tmp_path / "framed_items" / "date=2026-11-26" / "watch=a"
    folder.mkdir(parents=True)
    names = {
        "dead": f".b-00000-1-2.parquet.{host}-{dead.stdout.strip()}.aa.tmp",  # a crashed sink on this host
        "mine": f".b-00000-1-2.parquet.{host}-{os.getpid()}.bb.tmp",  # this pid's: a restarted container
        "alive": f".b-00000-1-2.parquet.{host}-{os.getppid()}.cc.tmp",  # a live writer beside us
        "remote": ".b-00000-1-2.parquet.otherhost-7.dd.tmp",  # another host's, recent: maybe writing
        "data": "b-00000-00000000000000000001-00000000000000000002.parquet",
    }
    for name in names.values():
        (folder / name).write_bytes(b"x")
    assert LocalStorage(tmp_path).clean_temp() == 2
    assert sorted(p.name for p in folder.iterdir()) == sorted([names["alive"], names["remote"], names["data"]])
    os.utime(folder / names["remote"], (0, 0))  # an hour and more old: a leftover
    assert LocalStorage(tmp_path).clean_temp() == 1
