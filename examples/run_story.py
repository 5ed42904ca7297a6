"""The whole story against a running hub, step by step: a user connects Google (the
sandbox plays it), an uploader publishes ``examples/sheets_reader/inf.yml``, a runner
asks the hub for the run environment and starts the app with exactly that env, and the
app reads a spreadsheet.

    make run                                   # in one terminal
    .venv/bin/python examples/run_story.py     # in another

    .venv/bin/python examples/run_story.py --start-server   # or all in one

With ``--hub URL`` (default http://127.0.0.1:8000) the hub must be this checkout's,
with the sandbox on and ``SITE_URL`` equal to ``URL``: the user and the tokens are
made with ``manage.py`` against the same database (the environment's
``DATABASE_URL``, else ``db.sqlite3``). With ``--start-server``, the script migrates a
temporary SQLite database, serves it with ``manage.py runserver`` on a free port, and
stops it at the end.

No token is ever printed: only SHA-256 fingerprints (8 hex digits).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # fingerprint() lives in the hub's code
# The client package (clients/python), installed or not.
sys.path.insert(1, str(ROOT / "clients" / "python" / "src"))

from integrations_hub_client import HubClient, NotAuthorizedYetError  # noqa: E402

from integrations.core.crypto import fingerprint  # noqa: E402

APP_DIR = ROOT / "examples" / "sheets_reader"
APP = "examples/sheets-reader"
CAPABILITIES = ["google.sheets.readonly"]
TIMEOUT = (5.0, 60.0)


class StoryError(Exception):
    """A step did not go as the story says; the message tells which and why."""


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def say(text: str) -> None:
    print(f"   {text}", flush=True)


def hub_python() -> str:
    """The hub's interpreter: the repository's ``.venv`` (``make install``), else ours."""
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


# --- HTML forms (the pages a browser would fill in) ------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    checkboxes: list[tuple[str, str, bool]] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif tag == "input" and self.forms and a.get("name"):
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio"):
                self.forms[-1].checkboxes.append((a["name"], a.get("value", "on"), "checked" in a))
            elif kind in ("hidden", "text", "email", "password"):
                self.forms[-1].fields.append((a["name"], a.get("value", "")))


def forms_of(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def csrf_token_of(html: str) -> str:
    for form in forms_of(html):
        for name, value in form.fields:
            if name == "csrfmiddlewaretoken":
                return value
    raise StoryError("no CSRF token on the page")


# --- the user's browser steps ---------------------------------------------------------


def _post_form(
    session: requests.Session, page_url: str, data: Mapping[str, str]
) -> requests.Response:
    page = session.get(page_url, timeout=TIMEOUT)
    page.raise_for_status()
    return session.post(
        page_url,
        data={**data, "csrfmiddlewaretoken": csrf_token_of(page.text)},
        allow_redirects=False,
        timeout=TIMEOUT,
    )


def _check_signed_in(session: requests.Session, hub: str) -> None:
    page = session.get(
        f"{hub}/settings/secrets/integrations/", allow_redirects=False, timeout=TIMEOUT
    )
    if page.status_code != 200:
        raise StoryError(f"not signed in: the integrations page answered {page.status_code}")


def sign_in(session: requests.Session, hub: str, *, email: str, password: str) -> None:
    """Sign in on /accounts/login/ as a browser would."""
    answer = _post_form(session, f"{hub}/accounts/login/", {"login": email, "password": password})
    if answer.status_code != 302:
        raise StoryError(f"sign-in refused ({answer.status_code})")
    _check_signed_in(session, hub)


def sign_up(session: requests.Session, hub: str, *, email: str, password: str) -> None:
    """Sign up on /accounts/signup/; on a hub whose email verification is not
    mandatory, the new user is signed in at once."""
    answer = _post_form(
        session,
        f"{hub}/accounts/signup/",
        {"email": email, "password1": password, "password2": password},
    )
    if answer.status_code != 302:
        raise StoryError(f"sign-up refused ({answer.status_code})")
    _check_signed_in(session, hub)


def connect_google(session: requests.Session, hub: str, capabilities: Sequence[str]) -> str:
    """Connect Google with ``capabilities``: POST the Connect form, follow to the
    consent page, Allow with every requested scope ticked, land back on our callback.
    Returns where the callback sends the user."""
    page_url = f"{hub}/settings/secrets/integrations/"
    page = session.get(page_url, timeout=TIMEOUT)
    page.raise_for_status()
    connect_path = "/settings/secrets/integrations/google/connect/"
    forms = [f for f in forms_of(page.text) if f.action.endswith(connect_path)]
    if not forms:
        raise StoryError("no Connect form for Google on the integrations page")
    # The page picks one level per product (radios named pick-<product>); the view
    # also takes the capabilities themselves, which is what this story posts.
    offered = {value for _, value, _ in forms[0].checkboxes if value}
    if not set(capabilities) <= offered:
        raise StoryError(f"the Connect form does not offer {sorted(set(capabilities) - offered)}")
    started = session.post(
        urljoin(page_url, forms[0].action),
        data=[*forms[0].fields, *(("capabilities", key) for key in capabilities)],
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    if started.status_code != 302:
        raise StoryError(f"Connect did not start ({started.status_code})")
    authorize = urljoin(hub, started.headers["Location"])
    if urlsplit(authorize).netloc != urlsplit(hub).netloc:
        raise StoryError(
            f"Connect went to {urlsplit(authorize).netloc}, not to this hub's sandbox: "
            "is SITE_URL the --hub URL, and the sandbox on?"
        )
    say(f"consent page: {urlsplit(authorize).path}")
    consent = session.get(authorize, timeout=TIMEOUT)
    consent.raise_for_status()
    (form,) = [f for f in forms_of(consent.text) if f.method == "post"]
    data: list[tuple[str, str]] = list(form.fields)
    ticked = [(name, value) for name, value, checked in form.checkboxes if checked]
    data += ticked
    data.append(("allow", "true"))
    say("allowed: " + ", ".join(value.rsplit("/", 1)[-1] for _, value in ticked))
    answer = session.post(
        urljoin(authorize, form.action) if form.action else authorize,
        data=data,
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    if answer.status_code != 302:
        raise StoryError(f"the consent page answered {answer.status_code}")
    callback = urljoin(authorize, answer.headers["Location"])
    say(f"callback: {urlsplit(callback).path}")
    done = session.get(callback, allow_redirects=False, timeout=TIMEOUT)
    if done.status_code != 302:
        raise StoryError(f"the callback answered {done.status_code}")
    landed = urljoin(callback, done.headers["Location"])
    say(f"landed on: {urlsplit(landed).path}")
    return landed


def allow_app(session: requests.Session, hub: str, app: str) -> None:
    """Press Allow on the app's page: the hub hands a run only what its user allowed
    the app (docs/authorization.md). Nothing to allow (the hub runs with
    ``INTEGRATIONS_APP_AUTHORIZATION=declared``) is fine too."""
    page_url = f"{hub}/apps/{app}/"
    page = session.get(page_url, timeout=TIMEOUT)
    page.raise_for_status()
    forms = [f for f in forms_of(page.text) if f.action.endswith(f"/apps/{app}/allow/")]
    if not forms:
        say("nothing to allow")
        return
    items = [value for name, value in forms[0].fields if name == "item"]
    done = session.post(
        urljoin(page_url, forms[0].action),
        data=forms[0].fields,
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    if done.status_code != 302:
        raise StoryError(f"Allow answered {done.status_code}")
    say("allowed: " + ", ".join(i.split(":")[1] for i in items))


# --- the uploader's and the runner's steps ----------------------------------------------


def upload_manifest(hub: str, *, api_token: str, text: str) -> dict[str, object]:
    """Upload an inf.yml with the JSON API; the stored version (201)."""
    answer = requests.post(
        f"{hub}/api/v1/manifests/",
        json={"text": text},
        headers={"Authorization": f"Bearer {api_token}"},
        timeout=TIMEOUT,
    )
    if answer.status_code == 403:
        raise StoryError(f"{APP} belongs to another user on this hub: use --email of its owner")
    if answer.status_code != 201:
        raise StoryError(f"upload refused ({answer.status_code}): {answer.text[:500]}")
    version: dict[str, object] = answer.json()
    return version


def run_app(
    hub: str, env: Mapping[str, str], *, python: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the example app with exactly ``env`` (plus what a process needs to start,
    and the sandbox's fake Google API as its endpoint)."""
    base = {
        k: os.environ[k]
        for k in ("PATH", "HOME", "LANG", "SYSTEMROOT", "TMPDIR")
        if k in os.environ
    }
    return subprocess.run(  # noqa: S603 (our own interpreter and file)
        [python or hub_python(), str(APP_DIR / "app.py")],
        env={**base, **env, "GOOGLE_API_ENDPOINT": f"{hub}/sandbox/google/"},
        cwd=APP_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- manage.py ----------------------------------------------------------------------

_ENSURE_USER = """
import os
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
email = os.environ["STORY_EMAIL"]
User = get_user_model()
user = User.objects.filter(email__iexact=email).first()
made = user is None
if made:
    user = User.objects.create_user(username=email, email=email)
user.set_password(os.environ["STORY_PASSWORD"])
user.save()
EmailAddress.objects.update_or_create(
    user=user, email=email, defaults={"verified": True, "primary": True}
)
print("created" if made else "existing")
"""


@dataclass
class Manage:
    """``manage.py`` of this checkout, run against the hub's database."""

    env: dict[str, str]
    python: str = field(default_factory=hub_python)

    def __call__(self, *args: str, extra_env: Mapping[str, str] | None = None) -> str:
        done = subprocess.run(  # noqa: S603 (our own interpreter and manage.py)
            [self.python, str(ROOT / "manage.py"), *args],
            env={**self.env, **(extra_env or {})},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise StoryError(f"manage.py {args[0]} failed:\n{done.stderr[-2000:]}")
        return done.stdout.strip()


# --- a server of our own ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def own_server() -> Iterator[tuple[str, Manage]]:
    """Migrate a temporary SQLite database and serve it with runserver on a free port,
    SITE_URL set to it; stop the server and delete the database at the end."""
    tmp = Path(tempfile.mkdtemp(prefix="run-story-"))
    port = free_port()
    hub = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "SITE_URL": hub,
        "SANDBOX_ENABLED": "true",
        "GOOGLE_CLIENT_ID": "",  # "Google" is the sandbox on this very server
        # A key of its own, so that nothing is kept in .local/.
        "INTEGRATIONS_TOKEN_KEYS": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }
    manage = Manage(env=env)
    log_path = tmp / "runserver.log"
    server: subprocess.Popen[bytes] | None = None
    try:
        step(f"Start a hub of our own at {hub} (temporary database in {tmp})")
        manage("migrate", "--no-input")
        say("migrated")
        with log_path.open("wb") as log:
            server = subprocess.Popen(  # noqa: S603 (our own interpreter and manage.py)
                [
                    manage.python,
                    str(ROOT / "manage.py"),
                    "runserver",
                    f"127.0.0.1:{port}",
                    "--noreload",
                ],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_until_up(hub, server)
        say(f"runserver is up (pid {server.pid})")
        yield hub, manage
    except BaseException:
        if log_path.exists():
            tail = log_path.read_text(errors="replace").splitlines()[-30:]
            print("\n--- runserver log (last lines) ---\n" + "\n".join(tail), file=sys.stderr)
        raise
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            say("runserver stopped")
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_until_up(hub: str, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise StoryError(f"runserver exited with {server.returncode}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{hub}/accounts/login/", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise StoryError(f"runserver did not answer within {timeout:.0f} s")


# --- the story ----------------------------------------------------------------------


def story(hub: str, manage: Manage, *, email: str) -> int:
    password = secrets.token_urlsafe(18)
    try:
        requests.get(f"{hub}/accounts/login/", timeout=TIMEOUT).raise_for_status()
    except requests.RequestException as exc:
        raise StoryError(
            f"no hub answers at {hub} ({exc.__class__.__name__}): `make run`?"
        ) from exc

    step(f"1. A user: {email}")
    made = manage(
        "shell",
        "--no-imports",
        "-c",
        _ENSURE_USER,
        extra_env={"STORY_EMAIL": email, "STORY_PASSWORD": password},
    )
    say(f"{made.splitlines()[-1]} (with manage.py shell; a new password for this run)")

    step("2. Sign in with a browser session (requests)")
    browser = requests.Session()
    sign_in(browser, hub, email=email, password=password)
    say("signed in")

    step("3. Connect Google for " + ", ".join(CAPABILITIES) + " (the sandbox plays Google)")
    connect_google(browser, hub, CAPABILITIES)

    step("4. Upload examples/sheets_reader/inf.yml with the JSON API")
    api_token = manage("create_api_token", "--user", email, "--name", "run-story", "-v", "0")
    say(f"API token made with manage.py create_api_token (sha256 {fingerprint(api_token)})")
    version = upload_manifest(hub, api_token=api_token, text=(APP_DIR / "inf.yml").read_text())
    say(f"{version['app']} version {version['number']}: valid {version['valid']}")
    say(f"current version: {version['current']}")

    step(f"5. Allow {APP} on its page (what it declares, nothing else)")
    allow_app(browser, hub, APP)

    step("6. A runner asks for the run environment")
    # A runner of its own per run (names are unique), scoped to the example's namespace,
    # its token expiring tomorrow.
    runner_name = f"run-story-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    runner_token = manage(
        "create_runner_token", runner_name, "--namespace", "examples", "--expires-in", "1"
    )
    say(
        f"runner token made with manage.py create_runner_token {runner_name} --namespace "
        f"examples --expires-in 1 (sha256 {fingerprint(runner_token)})"
    )
    try:
        with HubClient(hub, token=runner_token) as client:
            run = client.run_environment(user=email, app=APP)
    except NotAuthorizedYetError as exc:
        say("not ready: " + ", ".join(f"{m.key} ({m.reason})" for m in exc.missing))
        for action in exc.actions:
            say(f"to do: {action.kind} {', '.join(action.capabilities)} at {action.url}")
        return 1
    say(f"expires at {run.expires_at.isoformat() if run.expires_at else 'never'}")
    for key in run.keys:
        shown = (
            run.env[key] if key.endswith("_EXPIRES_AT") else f"sha256 {fingerprint(run.env[key])}"
        )
        say(f"{key} ({shown})")

    step("7. Run examples/sheets_reader/app.py with exactly that env")
    say(f"(and GOOGLE_API_ENDPOINT={hub}/sandbox/google/: the sandbox's fake Google API)")
    done = run_app(hub, run.env, python=manage.python)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        raise StoryError(f"the app exited with {done.returncode}")
    rows = json.loads(done.stdout)
    say("the sheet's rows:")
    for row in rows:
        say("  " + " | ".join(row))
    print("\nDone: the app read the sheet with the token the hub handed out.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--hub", default="http://127.0.0.1:8000", help="a running hub (default: %(default)s)"
    )
    where.add_argument(
        "--start-server", action="store_true", help="start a hub of our own on a temporary database"
    )
    parser.add_argument(
        "--email", default="story@example.com", help="the story's user (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        if args.start_server:
            with own_server() as (hub, manage):
                return story(hub, manage, email=args.email)
        hub = args.hub.rstrip("/")
        return story(hub, Manage(env=dict(os.environ)), email=args.email)
    except (StoryError, requests.RequestException) as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
