"""A separate process for the refresh tests, working on the test database.

python -m tests.integrations.racer credentials CONNECTION_ID THREADS GO_FILE
    THREADS threads wait for GO_FILE, then each asks for the connection's
    credentials; prints one JSON line: the SHA-256 prefixes of the tokens received
    (never the tokens) and the errors.
python -m tests.integrations.racer refresh CONNECTION_ID
    one forced refresh (used to kill a process in the middle of it).
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from pathlib import Path


def main() -> None:
    import django

    django.setup()
    from django.db import connection as db

    from integrations.connections.credentials import connection_credentials
    from integrations.connections.refresh import connection_refresh
    from integrations.models import Connection

    mode, connection_id = sys.argv[1], int(sys.argv[2])
    if mode == "refresh":
        print("ready", flush=True)
        connection_refresh(connection_id=connection_id, margin=10**9)
        return
    threads, go = int(sys.argv[3]), Path(sys.argv[4])
    results: list[str] = []
    errors: list[str] = []

    def ask() -> None:
        try:
            while not go.exists():
                time.sleep(0.001)
            conn = Connection.objects.get(pk=connection_id)
            token = connection_credentials(connection=conn).access_token
            results.append(hashlib.sha256(token.encode()).hexdigest()[:16])
        except Exception as exc:  # reported to the test, which fails on any
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            db.close()

    pool = [threading.Thread(target=ask) for _ in range(threads)]
    for t in pool:
        t.start()
    print("ready", flush=True)
    for t in pool:
        t.join()
    print(json.dumps({"tokens": results, "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
