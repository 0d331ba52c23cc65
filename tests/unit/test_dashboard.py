"""The dashboard's pure parts and its guard, without a broker: who may look, who may act and
from where, rates that never go negative, filters by id, positions and times as shown, counts
as the confirmations say them."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
from typer.testing import CliRunner

from pulsarjobs.cli import app as cli_app
from pulsarjobs.dashboard import Secret, create_app
from pulsarjobs.dashboard.auth import COOKIE, is_loopback, safe_next
from pulsarjobs.dashboard.pages import NOTICE_COOKIE, ago, iso, span, templates
from pulsarjobs.dashboard.samples import Sample, Samples, growth
from pulsarjobs.operations.browse import Count
from pulsarjobs.operations.dead_letters import DeadLetter, DeadLetterFilter
from pulsarjobs.settings import Settings
from pulsarjobs.transport.backlog import parse_position

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")  # Starlette would rather have httpx2
    from starlette.testclient import TestClient

TOKEN = "unit-token"
T0 = datetime(2026, 1, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def client() -> Iterator[TestClient]:
    # No broker: every request below is answered before anything is read from one.
    web = create_app(Settings(), Secret(TOKEN))
    with TestClient(web, base_url="http://127.0.0.1:7420") as found:
        yield found


@pytest.fixture
def read_only() -> Iterator[TestClient]:
    web = create_app(Settings(), Secret(TOKEN), read_only=True)
    with TestClient(web, base_url="http://127.0.0.1:7420") as found:
        yield found


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- auth ----------------------------------------------------------------------------------------


def test_without_the_token_pages_send_to_the_login_and_the_api_refuses(client: TestClient) -> None:
    page = client.get("/dead?queue=default", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fdead%3Fqueue%3Ddefault"
    assert client.get("/api/queues").status_code == 401
    assert client.get("/api/queues", headers=bearer("wrong")).status_code == 401
    assert client.post("/api/dead/replay", headers=bearer("wrong")).status_code == 401
    assert client.get("/login").status_code == 200
    assert client.get("/static/dashboard.css").status_code == 200  # no secret in it


def test_the_token_in_the_url_sets_a_cookie_of_its_hmac_and_leaves_for_the_clean_url(
    client: TestClient,
) -> None:
    wrong = client.get("/queues?token=nope&x=1", follow_redirects=False)
    assert wrong.headers["location"] == "/login?failed=1"
    assert COOKIE not in client.cookies
    response = client.get(f"/queues?x=1&token={TOKEN}", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/queues?x=1")
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert TOKEN not in cookie and client.cookies[COOKIE] == Secret(TOKEN).cookie_value
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_the_login_form_takes_the_token_and_goes_on_only_within_the_dashboard(
    client: TestClient,
) -> None:
    refused = client.post("/login", data={"token": "nope", "next": "/dead"}, headers=same_origin())
    assert refused.status_code == 401 and 'data-testid="login-failed"' in refused.text
    done = client.post(
        "/login",
        data={"token": TOKEN, "next": "//evil.example/"},
        headers=same_origin(),
        follow_redirects=False,
    )
    assert (done.status_code, done.headers["location"]) == (303, "/")
    assert client.cookies[COOKIE] == Secret(TOKEN).cookie_value


def same_origin() -> dict[str, str]:
    return {"Sec-Fetch-Site": "same-origin"}


def test_a_post_from_another_site_is_refused_even_with_the_cookie(client: TestClient) -> None:
    client.get(f"/?token={TOKEN}", follow_redirects=False)
    form = {"queue": ""}  # past the guard, a wrong queue name: 400, before any broker read
    assert client.post("/dead/replay", data=form, headers=same_origin()).status_code == 400
    for headers in (
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example"},
        {},  # a browser that tells nothing: the cookie alone is not enough
    ):
        refused = client.post("/dead/replay", data=form, headers=headers)
        assert refused.status_code == 403, headers
    assert (
        client.post(
            "/dead/replay", data=form, headers={"Origin": "http://127.0.0.1:7420"}
        ).status_code
        == 400
    )


def test_an_api_client_with_the_bearer_token_needs_no_origin(client: TestClient) -> None:
    response = client.post("/api/dead/replay", data={"queue": ""}, headers=bearer())
    assert response.status_code == 400
    assert "queue name" in response.json()["error"]
    crossed = client.post(
        "/api/dead/replay", data={"queue": ""}, headers={**bearer(), "Sec-Fetch-Site": "cross-site"}
    )
    assert crossed.status_code == 403


def test_a_read_only_dashboard_refuses_every_post_but_logging_out(read_only: TestClient) -> None:
    for path in (
        "/api/dead/replay",
        "/api/dead/delete",
        "/api/workers/stop",
        "/api/queues/pause",
        "/api/signals/send",
        "/api/scheduled/cancel",
        "/api/retries/kill",
    ):
        form = {"queue": "default", "key": "paid:o-1"}
        assert read_only.post(path, data=form, headers=bearer()).status_code == 403
    assert (
        read_only.post("/logout", headers=same_origin(), follow_redirects=False).status_code == 303
    )


def test_wrong_parameters_are_one_line_errors(client: TestClient) -> None:
    assert (
        "size must be one of 25, 50, 100"
        in client.get("/api/queues/default?size=7", headers=bearer()).json()["error"]
    )
    assert (
        "ledger:entry"
        in client.get("/api/queues/default?after=nope", headers=bearer()).json()["error"]
    )
    page = client.get("/jobs/default/elsewhere/1:2", headers=bearer())
    assert page.status_code == 400 and 'data-testid="error"' in page.text
    for form, error in (
        ({"queue": "default", "scope": "selected"}, "No job is selected"),
        ({"queue": "default", "scope": "selected", "ids": "nope"}, "ledger:entry"),
        ({"queue": "default"}, "scope=selected"),
    ):
        answer = client.post("/api/scheduled/run-now", data=form, headers=bearer())
        assert answer.status_code == 400 and error in answer.json()["error"]
    assert client.post("/api/retries/drop", data={}, headers=bearer()).status_code == 404


def test_a_count_of_all_says_at_least_when_not_all_was_read() -> None:
    many = templates.env.get_template("macros.html").module.many
    assert many(Count(240, complete=True), "scheduled job") == "240 scheduled jobs"
    assert many(Count(1, complete=True), "dead job") == "1 dead job"
    assert many(Count(5000, complete=False), "dead job") == "at least 5,000 dead jobs"


def test_a_signal_that_cannot_be_sent_is_a_one_line_error_and_a_notice(
    client: TestClient,
) -> None:
    # Checked before anything is sent: no broker is needed to refuse these.
    for form, said in (
        ({"key": "paid:o-1", "payload": "{'cents': 5}"}, "The payload is not JSON: "),
        ({"key": "paid:o-1", "payload": "[1,"}, "The payload is not JSON: "),
        ({"key": " ", "payload": "1"}, "Say which key to signal"),
        ({"key": "paid:o-1", "keep": "a while"}, "keep: 'a while' is not a duration"),
        ({"key": "paid:o-1", "payload": str(2**70)}, "The payload cannot be sent: int "),
    ):
        response = client.post("/api/signals/send", data=form, headers=bearer())
        assert response.status_code == 400, form
        error = response.json()["error"]
        assert error.startswith(said) and "\n" not in error, error
    client.get(f"/?token={TOKEN}", follow_redirects=False)
    form = {"key": "paid:o-1", "payload": "{oops", "back": "/waiting?key=paid%3Ao-1"}
    page = client.post("/signals/send", data=form, headers=same_origin(), follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/waiting?key=paid%3Ao-1")
    notice = unquote(client.cookies[NOTICE_COOKIE])
    assert notice.startswith("No signal sent. The payload is not JSON: Expecting property name")


def test_safe_next_and_loopback() -> None:
    assert safe_next("/dead?queue=a") == "/dead?queue=a"
    for bad in (None, "", "https://evil.example/", "//evil.example", "/\\evil.example"):
        assert safe_next(bad) == "/"
    assert all(map(is_loopback, ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2")))
    assert not any(map(is_loopback, ("0.0.0.0", "10.0.0.1", "example.com", "::")))


def test_the_dashboard_refuses_to_start_on_another_address_without_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PULSARJOBS_DASHBOARD_TOKEN", raising=False)
    result = CliRunner().invoke(cli_app, ["dashboard", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "PULSARJOBS_DASHBOARD_TOKEN" in result.output
    assert len(result.output.strip().splitlines()) <= 2  # one message, maybe wrapped


@pytest.mark.parametrize("token", ["x", "fifteen-chars!!"])
def test_the_dashboard_refuses_a_short_token_on_another_address(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    served = []
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: served.append(args))
    monkeypatch.setenv("PULSARJOBS_DASHBOARD_TOKEN", token)
    result = CliRunner().invoke(cli_app, ["dashboard", "--host", "0.0.0.0"])
    assert (result.exit_code, served) == (2, [])
    assert "at least 16 characters" in result.output
    monkeypatch.setenv("PULSARJOBS_DASHBOARD_TOKEN", "sixteen-chars!!!")
    assert CliRunner().invoke(cli_app, ["dashboard", "--host", "0.0.0.0"]).exit_code == 0
    assert len(served) == 1


# -- rates ---------------------------------------------------------------------------------------


def sample(at: int, **totals: tuple[int, int]) -> Sample:
    started = {worker: T0 + timedelta(seconds=at - 1) for worker in totals}
    return Sample(T0 + timedelta(seconds=at), totals, started, 0, 0, 0, 0)


def test_rates_count_what_each_worker_did_between_samples_and_never_go_negative() -> None:
    before = sample(10, a=(100, 5), b=(50, 0))
    assert growth(before, sample(15, a=(130, 7), b=(60, 0))) == (40, 2)
    restarted = Sample(before.at + timedelta(seconds=5), {"a": (3, 0)}, {"a": T0}, 0, 0, 0, 0)
    assert growth(before, restarted) == (0, 0)  # a total that went down counts as nothing
    new_worker = sample(15, a=(100, 5), c=(8, 1))  # c started after the earlier sample
    assert growth(before, new_worker) == (8, 1)

    samples = Samples(keep=2)
    for point in (before, sample(15, a=(150, 5), b=(50, 0)), sample(20, a=(150, 5), b=(50, 0))):
        samples.add(point)
    rates = [(p.processed_per_second, p.failed_per_second) for p in samples.points()]
    assert rates == [(10.0, 0.0), (0.0, 0.0)]


# -- dead-letter filters by id -------------------------------------------------------------------


def letter(message_id: str, job_id: str) -> DeadLetter:
    return DeadLetter(job_id, "t", "reason", "E: x", T0, "topic", message_id, None, b"")


def test_a_filter_by_ids_picks_only_those_and_keeps_its_identity_apart() -> None:
    plain = DeadLetterFilter(job_type="t", error="x", since_text="2h")
    assert plain.identity() == repr(("t", "x", "2h"))  # as before ids: an old replay resumes
    by_position = DeadLetterFilter(message_ids=frozenset({"9:2", "7:5"}))
    assert by_position.matches(letter("7:5", "a")) and not by_position.matches(letter("7:6", "a"))
    assert by_position.span() == ((7, 5), (9, 2))
    assert DeadLetterFilter(message_ids=frozenset()).matches(letter("7:5", "a")) is False
    by_job = DeadLetterFilter(job_ids=frozenset({"b"}))
    assert by_job.matches(letter("1:1", "b")) and not by_job.matches(letter("1:1", "a"))
    identities = {f.identity() for f in (plain, by_position, by_job, DeadLetterFilter())}
    assert len(identities) == 4


# -- positions and times -------------------------------------------------------------------------


def test_positions_and_times_as_shown() -> None:
    assert parse_position(" 12:0 ") == (12, 0)
    for bad in ("12", "a:b", "-1:2", "1:2:3"):
        with pytest.raises(ValueError, match="ledger:entry"):
            parse_position(bad)
    assert iso(T0) == "2026-01-04T09:00:00Z"
    assert ago(T0, T0 + timedelta(minutes=3)) == "3m ago"
    assert ago(T0 + timedelta(hours=5), T0) == "in 5h"
    assert span(90) == "90s" and span(3 * 86400) == "3d"


def test_the_probes_answer_without_the_token(client: TestClient) -> None:
    assert (client.get("/livez").status_code, client.get("/livez").text) == (200, "live\n")
    assert (client.get("/readyz").status_code, client.get("/readyz").text) == (200, "ready\n")
