"""An app as real apps are written: it reads its environment and calls Google's API with
google-api-python-client (its bundled, static discovery documents: no network needed
for discovery).

    SPREADSHEET_ID=... RANGE='Sheet1!A1:B3' python app.py

`GOOGLE_API_ENDPOINT` is set only when running against the hub's sandbox, whose fake
Google API stands in for sheets.googleapis.com.
"""

from __future__ import annotations

import json
import os
import sys

from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build


def main() -> int:
    creds = Credentials(token=os.environ["GOOGLE_OAUTH_ACCESS_TOKEN"])
    options = {}
    if os.environ.get("GOOGLE_API_ENDPOINT"):
        options["api_endpoint"] = os.environ["GOOGLE_API_ENDPOINT"]
    sheets = build(
        "sheets", "v4", credentials=creds, static_discovery=True, client_options=options or None
    )
    result = (
        sheets.spreadsheets()
        .values()
        .get(
            spreadsheetId=os.environ.get("SPREADSHEET_ID", "example-sheet"),
            range=os.environ.get("RANGE", "Sheet1!A1:B3"),
        )
        .execute()
    )
    json.dump(result.get("values", []), sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
