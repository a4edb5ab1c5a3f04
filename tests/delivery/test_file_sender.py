"""The folder destination: one complete file per message, names in delivery order."""

from __future__ import annotations

from pathlib import Path

from engine.store.base import EntryStatus
from engine.store.sqlite import SqliteStore
from tests.delivery.conftest import Route
from tests.delivery.harness import delivering, eventually, route_all, store_messages
from tests.support.messages import adt


async def test_files_sort_in_delivery_order_with_the_bytes_received(
    tmp_path: Path, store: SqliteStore, route: Route
) -> None:
    folder = tmp_path / "out"
    payloads = [adt(f"F/{n}", patient_id="PÉRÉ") for n in range(12)]  # '/' is not a file name
    routes = [route(mllp=None, file=str(folder))]
    await store_messages(store, "adt", payloads)
    await route_all(store, routes)
    async with delivering(store, *routes):
        await eventually(lambda: _count(store, EntryStatus.DELIVERED, 12))
    files = sorted(folder.iterdir())
    assert [file.read_bytes() for file in files] == payloads
    assert files[0].name.endswith("-F_0.hl7")
    assert not list(folder.glob(".*"))  # no temporary file left
    assert {oct(file.stat().st_mode & 0o777) for file in files} == {"0o640"}  # patient data
    assert oct(folder.stat().st_mode & 0o777) == "0o750"


async def test_an_unwritable_folder_is_retried_then_delivered(
    tmp_path: Path, store: SqliteStore, route: Route
) -> None:
    folder = tmp_path / "out"
    folder.write_text("a file where the folder should be")
    routes = [route(mllp=None, file=str(folder))]
    await store_messages(store, "adt", [adt("F1")])
    await route_all(store, routes)
    async with delivering(store, *routes):
        await eventually(lambda: _has_error(store))
        folder.unlink()
        await eventually(lambda: _count(store, EntryStatus.DELIVERED, 1))
    assert [file.name for file in folder.iterdir()] == ["000000000001-F1.hl7"]


async def _count(store: SqliteStore, status: EntryStatus, count: int) -> bool:
    return len(await store.list_entries(status, None, None, 1000)) == count


async def _has_error(store: SqliteStore) -> bool:
    found = await store.queue_status()
    return bool(found) and (found[0].last_error or "").startswith("cannot write the message file")
