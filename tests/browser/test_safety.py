"""Who may look and who may act, in a real headless Chromium and with httpx: the login form, POSTs
without the token, from another site, and a read-only dashboard. Nothing here changes the
shared shop (tests/browser/shop.py): every refused change is checked to have changed nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from pulsarjobs.dashboard.auth import COOKIE
from tests.browser.served import BEARER, TOKEN, Served, dashboard_process, log_in
from tests.browser.shop import APP, Shop
from tests.browser.shown import text

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.broker, pytest.mark.browser]

OTHER_SITE = "http://shop-offers.example/"
ACTIONS = "main form[method=post] button, main button[formaction]"  # buttons that change things


def paused(shop: Shop, queue: str) -> bool:
    with shop.inspector() as inspector:
        return inspector.queue(queue).paused


def test_the_login_form_lets_in_only_with_the_token(
    page: Page, shop: Shop, screenshot: Any
) -> None:
    page.goto(shop.dashboard.at("/dead?queue=billing"))
    assert "/login?next=" in page.url
    screenshot(page, "login")
    page.get_by_test_id("token-input").fill("not-the-token")
    page.get_by_test_id("login-button").click()
    assert text(page, "login-failed") == "That is not the token."
    page.get_by_test_id("token-input").fill(TOKEN)
    page.get_by_test_id("login-button").click()
    page.wait_for_url("**/dead?queue=billing")  # on to the page asked for
    assert page.get_by_test_id("dead-table").is_visible()


def test_a_post_without_the_token_is_refused(shop: Shop) -> None:
    served = shop.dashboard
    same_origin = {"Sec-Fetch-Site": "same-origin"}
    for path, headers in (("/queues/pause", same_origin), ("/api/queues/pause", {})):
        response = httpx.post(served.at(path), data={"queue": "emails"}, headers=headers)
        assert response.status_code == 401, (path, response.text)
    wrong = {"Authorization": "Bearer not-the-token"}
    response = httpx.post(served.at("/api/queues/pause"), data={"queue": "emails"}, headers=wrong)
    assert response.status_code == 401
    assert not paused(shop, "emails")


def test_a_post_from_another_site_is_refused(page: Page, shop: Shop) -> None:
    served = shop.dashboard
    log_in(page, served, "/queues")
    # A page of another site with a form that posts to the dashboard, as an attacker's would.
    form = (
        f'<form method="post" action="{served.at("/queues/pause")}">'
        '<input type="hidden" name="queue" value="emails"><button>Win a prize</button></form>'
    )
    page.route(OTHER_SITE, lambda route: route.fulfill(content_type="text/html", body=form))
    page.goto(OTHER_SITE)
    with page.expect_response(served.at("/queues/pause")) as posted:
        page.get_by_text("Win a prize").click()
    assert posted.value.status in (401, 403)  # the cookie is SameSite=Strict: not even sent

    # With the browser's cookie, as a site could only hope to send it: refused still.
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == COOKIE)
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": OTHER_SITE.rstrip("/")}):
        response = httpx.post(
            served.at("/queues/pause"),
            data={"queue": "emails"},
            headers=headers,
            cookies={COOKIE: cookie},
        )
        assert response.status_code == 403, (headers, response.text)
    assert not paused(shop, "emails")


@pytest.fixture
def read_only(shop: Shop, tmp_path: Path) -> Iterator[Served]:
    with dashboard_process(shop.env, tmp_path / "read-only.log", APP, "--read-only") as served:
        yield served


def test_a_read_only_dashboard_shows_no_button_and_refuses_every_change(
    page: Page, shop: Shop, read_only: Served
) -> None:
    log_in(page, shop.dashboard, "/queues")
    assert page.locator(ACTIONS).count() > 0  # the buttons the read-only one must not show
    log_in(page, read_only, "/")
    assert text(page, "read-only") == "read-only"
    for path in (
        "/queues",
        "/scheduled?queue=emails",
        "/retries?queue=billing",
        "/workers",
        "/waiting",
        "/dead?queue=billing",  # last: a dead letter's page is opened from it
    ):
        page.goto(read_only.at(path))
        assert page.locator("main table tbody tr").count() > 0, path  # rows, with no buttons
        assert page.locator(ACTIONS).count() == 0, path
    page.get_by_test_id("job-link").first.click()  # a dead letter's page
    page.get_by_test_id("job-fields").wait_for(state="visible")  # is_visible() would not wait
    assert page.locator(ACTIONS).count() == 0

    posted = page.evaluate(  # as the dashboard's own page would post: same origin, the cookie
        """async () => (await fetch("/queues/pause", {method: "POST",
            body: new URLSearchParams({queue: "emails"})})).status"""
    )
    assert posted == 403
    response = httpx.post(
        read_only.at("/api/queues/pause"), data={"queue": "emails"}, headers=BEARER
    )
    assert response.status_code == 403
    assert not paused(shop, "emails")


def test_a_lost_session_takes_the_open_page_to_the_login_form_and_back(
    page: Page, shop: Shop
) -> None:
    log_in(page, shop.dashboard, "/")
    page.context.clear_cookies()  # the session is lost (a restarted dashboard: a new token)
    page.wait_for_url("**/login?next=*", timeout=15_000)  # the page's own refresh says so
    page.get_by_test_id("token-input").fill(TOKEN)
    page.get_by_test_id("login-button").click()
    page.wait_for_url(shop.dashboard.at("/"))
    assert page.locator("#live").is_visible()

    log_in(page, shop.dashboard, "/queues")
    page.context.clear_cookies()
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator('[data-testid="queue-row"][data-queue="emails"]').get_by_test_id("pause").click()
    page.wait_for_url("**/login?next=%2Fqueues*", timeout=15_000)  # not a bare line of text
    assert page.get_by_test_id("token-input").is_visible()
    assert not paused(shop, "emails")
