"""kombu's filesystem transport (the Celery queue of `make run`, without Redis), with
messages written whole before the consumer can see them.

kombu 5.7 writes a message in place: it creates ``<time>_<uuid>.<queue>.msg``, then
locks and writes it; the consumer lists the folder, moves each ``*.<queue>.msg`` away
and reads it without taking the lock. A message published while the worker polls
(beat's sweep every minute, and the sweep's one task per connection, published from a
worker thread) can be read empty, and the worker dies of the JSONDecodeError
("Unrecoverable error", celery/kombu#1551): `make run` stopped every process a few
minutes after a connection was made. Here a message is written under a name the
consumer ignores and renamed into place (atomic within a folder).
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    # kombu's own signature (its base class names the message `message`).
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # No dot: the consumer takes only names whose part after the first dot is
        # "<queue>.msg".
        partial = os.path.join(self.data_folder_out, f"partial-{uuid.uuid4().hex}")
        try:
            with open(partial, "wb", buffering=0) as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
