"""Folders the engine creates are 0750 at every level, whatever the umask: the store's,
a file destination's and `enrich --out`'s."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.base.folders import make_folders
from engine.cli import main
from engine.delivery.file_sender import FileSender
from engine.store.base import EntryStatus, OutboxEntry
from engine.store.sqlite import SqliteStore
from tests.offline.test_enrich_command import SAMPLES, config_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o000, 0o077], ids=["umask-000", "umask-077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def test_every_folder_made_is_0750_and_existing_ones_are_left_alone(
    tmp_path: Path, umask: int
) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    existing.chmod(0o755)
    make_folders(existing / "a" / "b" / "c")
    assert [mode(existing / part) for part in ("a", "a/b", "a/b/c")] == [0o750] * 3
    assert mode(existing) == 0o755
    make_folders(existing / "a" / "b" / "c")  # already there: nothing to do


def test_a_parent_that_is_a_file_is_an_os_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(FileExistsError):
        make_folders(tmp_path / "file" / "sub")


async def test_the_store_folders_are_0750(tmp_path: Path, umask: int) -> None:
    store = await SqliteStore.open(str(tmp_path / "var" / "lib" / "engine.db"))
    await store.close()
    assert (mode(tmp_path / "var"), mode(tmp_path / "var" / "lib")) == (0o750, 0o750)


async def test_a_file_destination_folders_are_0750(tmp_path: Path, umask: int) -> None:
    sender = FileSender(str(tmp_path / "outbox" / "adt"))
    entry = OutboxEntry(
        1,
        1,
        "adt",
        "archive",
        "C1",
        "ADT^A28",
        0.0,
        b"MSH|^~\\&|\r",
        None,
        EntryStatus.PENDING,
        0,
        0.0,
        None,
    )
    assert (await sender.send(entry)).outcome.value == "delivered"
    assert (mode(tmp_path / "outbox"), mode(tmp_path / "outbox" / "adt")) == (0o750, 0o750)


def test_enrich_out_folders_are_0750(tmp_path: Path, umask: int) -> None:
    out = tmp_path / "enriched" / "today"
    sample = str(SAMPLES / "01_a28_vali_found_nir.hl7")
    assert main(["enrich", "--config", str(config_file(tmp_path)), sample, "--out", str(out)]) == 0
    assert (mode(tmp_path / "enriched"), mode(out)) == (0o750, 0o750)
