"""The site's visitors, for Locust: bench/site.py runs it headless, one phase at a time.

    locust -f bench/locustfile.py --headless --host http://127.0.0.1:PORT -u 20 -r 20 -t 60s \
        --samples samples.json Uploader SignUp Reader

- Uploader logs in once, then uploads the 6 MB photo (`--photo`) again and again.
- SignUp opens the sign-up form and signs up with a new address each time (a password hash, a mail).
- Reader reads /trending/ and /reports/ (and now and then the home page), logged out.
- Visitor does all of that in turn, alone: the "idle" figures.
- LogInBurst is one Locust user that, `--bursts` times, has 20 people log in at the same instant.

Every request is also kept whole (name, start, duration, outcome) and written to `--samples` when
Locust quits, so bench/site.py can take exact percentiles and split page views into those that
overlapped a log-in burst and those that did not. POSTs are not redirected: a figure is the time of
the POST itself.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from locust import HttpUser, User, between, constant, events, task
from locust.clients import HttpSession

from bench.site_setup import BURST_SIZE, PASSWORD, UPLOADER_ACCOUNTS

_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_samples: list[tuple[str, float, float, bool]] = []
_bursts: list[tuple[float, float]] = []
_uploaders = itertools.count()
_signups = itertools.count()


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--samples", default="", help="where every request's figures are written")
    parser.add_argument("--photo", default="", help="the JPEG the uploaders send")
    parser.add_argument("--bursts", type=int, default=3, help="log-in bursts (LogInBurst)")
    parser.add_argument("--burst-first-s", type=float, default=8.0, help="seconds before the first burst")
    parser.add_argument("--burst-every-s", type=float, default=10.0, help="seconds between bursts")


@events.request.add_listener
def _record(name: str, start_time: float, response_time: float, exception: Any, **kwargs: Any) -> None:
    _samples.append((name, start_time, response_time, exception is None))


@events.quitting.add_listener
def _write(environment: Any, **kwargs: Any) -> None:
    path = environment.parsed_options.samples
    if path:
        Path(path).write_text(json.dumps({"samples": _samples, "bursts": _bursts}))


def csrf_token(html: str) -> str:
    found = _CSRF.search(html)
    if found is None:
        raise RuntimeError("The page has no CSRF token: is it the form it should be?")
    return found.group(1)


def log_in(client: HttpSession, email: str, name: str) -> None:
    """Log in as `email`; the POST is recorded under `name` and fails unless it redirects."""
    token = csrf_token(client.get("/accounts/login/", name=f"{name} form").text)
    post_log_in(client, email, token, name)


def post_log_in(client: HttpSession, email: str, token: str, name: str) -> None:
    form = {"csrfmiddlewaretoken": token, "username": email, "password": PASSWORD}
    with client.post(
        "/accounts/login/", data=form, name=name, allow_redirects=False, catch_response=True
    ) as response:
        if response.status_code != 302:
            response.failure(f"log-in answered {response.status_code}, not a redirect")


def upload(client: HttpSession, photo: bytes, token: str) -> None:
    with client.post(
        "/images/",
        data={"csrfmiddlewaretoken": token},
        files={"image": ("photo.jpg", photo, "image/jpeg")},
        name="upload",
        allow_redirects=False,
        catch_response=True,
    ) as response:
        if response.status_code != 302:
            response.failure(f"upload answered {response.status_code}, not a redirect")


def sign_up(client: HttpSession) -> None:
    token = csrf_token(client.get("/accounts/signup/", name="sign-up form").text)
    email = f"new{next(_signups)}-{time.time_ns()}@bench.example"
    form = {"csrfmiddlewaretoken": token, "email": email, "password": PASSWORD}
    with client.post(
        "/accounts/signup/", data=form, name="sign-up", allow_redirects=False, catch_response=True
    ) as response:
        if response.status_code != 302:
            response.failure(f"sign-up answered {response.status_code}, not a redirect")


class Uploader(HttpUser):
    fixed_count = 4
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.photo = Path(self.environment.parsed_options.photo).read_bytes()
        log_in(self.client, f"user{next(_uploaders) % UPLOADER_ACCOUNTS}@bench.example", "log-in")
        self.token = csrf_token(self.client.get("/images/", name="/images/").text)

    @task
    def upload(self) -> None:
        upload(self.client, self.photo, self.token)


class SignUp(HttpUser):
    fixed_count = 2
    wait_time = between(0.5, 1.5)

    @task
    def sign_up(self) -> None:
        sign_up(self.client)


class Reader(HttpUser):
    wait_time = between(0.5, 1.5)

    @task(3)
    def trending(self) -> None:
        self.client.get("/trending/")

    @task(3)
    def reports(self) -> None:
        self.client.get("/reports/")

    @task(1)
    def home(self) -> None:
        self.client.get("/", name="/ (home)")


class Visitor(HttpUser):
    """One person alone on the site, doing each thing in turn: the idle figures."""

    wait_time = constant(0.5)

    def on_start(self) -> None:
        self.photo = Path(self.environment.parsed_options.photo).read_bytes()
        log_in(self.client, "user0@bench.example", "log-in")
        self.token = csrf_token(self.client.get("/images/", name="/images/").text)

    @task
    def each_in_turn(self) -> None:
        upload(self.client, self.photo, self.token)
        sign_up(self.client)
        self.client.get("/trending/")
        self.client.get("/reports/")
        self.client.get("/", name="/ (home)")


class LogInBurst(User):
    """BURST_SIZE people with the log-in form open press "Log in" at the same instant, --bursts times."""

    fixed_count = 1
    wait_time = constant(1)

    @task
    def bursts(self) -> None:
        options = self.environment.parsed_options
        began = time.time()
        for number in range(options.bursts):
            gevent.sleep(
                max(0.0, began + options.burst_first_s + number * options.burst_every_s - time.time())
            )
            self.burst()
        gevent.sleep(3600)  # the run's time limit ends it

    def burst(self) -> None:
        sessions = [HttpSession(self.host, self.environment.events.request, self) for _ in range(BURST_SIZE)]
        tokens = [csrf_token(s.get("/accounts/login/", name="log-in form (burst)").text) for s in sessions]
        go = gevent.event.Event()

        def press(session: HttpSession, number: int, token: str) -> None:
            go.wait()
            account = f"user{UPLOADER_ACCOUNTS + number}@bench.example"
            post_log_in(session, account, token, "log-in (burst)")

        presses = [
            gevent.spawn(press, s, n, t) for n, (s, t) in enumerate(zip(sessions, tokens, strict=True))
        ]
        gevent.sleep(0.2)  # every greenlet is waiting on `go`
        started = time.time()
        go.set()
        gevent.joinall(presses)
        _bursts.append((started, time.time()))
        for session in sessions:
            session.close()
