"""The filesystem queue of `make run` (config/kombu_filesystem.py): a consumer draining
it while other processes publish never reads a message half written. (kombu's own
transport writes messages in place, and a worker reading one empty dies of the
JSONDecodeError: celery/kombu#1551; against it, this test fails most runs.)"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from django.conf import settings
from kombu import Connection
from kombu.transport.filesystem import Empty

TRANSPORT = "config.kombu_filesystem:Transport"
PRODUCERS = 3
EACH = 1000


def _options(folder: Path) -> dict[str, object]:
    return {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "processed_folder": str(folder),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }


def _produce(folder: Path, n: int) -> None:
    with Connection(
        "filesystem://", transport=TRANSPORT, transport_options=_options(folder)
    ) as conn:
        for i in range(n):
            conn.default_channel._put("q", {"i": i, "pad": "x" * 20_000})


def test_the_queue_of_make_run_is_its_own_transport():
    if not settings.REDIS_URL:
        assert settings.CELERY_BROKER_TRANSPORT == TRANSPORT


def test_a_consumer_never_reads_a_message_half_written(tmp_path: Path):
    spawn = multiprocessing.get_context("spawn")  # not fork: pytest runs threads
    producers = [spawn.Process(target=_produce, args=(tmp_path, EACH)) for _ in range(PRODUCERS)]
    for p in producers:
        p.start()
    got, errors = 0, list[str]()
    with Connection(
        "filesystem://", transport=TRANSPORT, transport_options=_options(tmp_path)
    ) as conn:
        channel = conn.default_channel
        while got + len(errors) < PRODUCERS * EACH:
            try:
                message = channel._get("q")
            except Empty:
                assert any(p.is_alive() for p in producers) or any(tmp_path.glob("*.q.msg"))
                continue
            except Exception as exc:
                errors.append(repr(exc))
                continue
            assert len(message["pad"]) == 20_000
            got += 1
    for p in producers:
        p.join(30)
        assert p.exitcode == 0
    assert errors == []
    assert got == PRODUCERS * EACH
