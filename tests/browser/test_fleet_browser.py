"""In a real browser against the real app (gunicorn, PostgreSQL): a viewer signs in, narrows
the cluster list to blocked clusters with the filter form, opens one and reads why; and the
overview follows a running sync through htmx polling until it ends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import Page, sync_playwright

from accounts.roles import Role
from fleet.choices import SyncStatus
from fleet.models import SyncRun
from tests.browser.app import CHROMIUM, CHROMIUM_ARGS, serve, sign_in
from tests.conftest import IsolatedDatabase
from tests.factories import PASSWORD, make_cluster, make_subscription, make_sync_run, make_user

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no Chromium at {CHROMIUM}: scripts/ensure_test_tools.sh installs Debian's",
    ),
]


@pytest.fixture
def inventory(isolated_db: IsolatedDatabase, settings) -> dict[str, str]:
    """A viewer and a small fleet, committed to the isolated database the server will use."""
    # The suite hashes passwords with MD5 for speed; the server only knows the real hashers.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    viewer = make_user(Role.VIEWER, username="vera")
    payments = make_subscription(name="payments-prod")
    make_cluster(name="pay-weu-1", subscription=payments)
    make_cluster(name="pay-weu-2", subscription=payments, ring="canary")
    make_cluster(name="pay-eus-old", subscription=payments, kubernetes_version="1.31.4")
    make_cluster(
        name="pay-eus-win",
        subscription=payments,
        pools=[{}, {"name": "win1", "os_type": "Windows", "os_sku": "Windows2022"}],
    )
    return {"username": viewer.username, "password": PASSWORD}


@pytest.fixture
def server(isolated_db: IsolatedDatabase, inventory, tmp_path: Path) -> Iterator[str]:
    with serve(isolated_db.url, tmp_path) as base:
        yield base


@pytest.fixture
def page() -> Iterator[Page]:
    """A fresh Chromium tab. Request it last: while it is open, Playwright's event loop runs in
    this thread and Django refuses the ORM here."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            tab = context.new_page()
            tab.set_default_timeout(15_000)
            yield tab
        finally:
            browser.close()


def test_a_viewer_finds_the_blocked_clusters_and_reads_why_one_is_blocked(
    server: str, inventory: dict[str, str], page: Page
):
    sign_in(page, server, inventory)
    assert page.inner_text("[data-testid=username]") == "vera"

    page.click("a:has-text('All 4 clusters')")
    page.wait_for_url(server + "/clusters/")
    assert sorted(page.locator("table.clusters tbody td:first-child a").all_inner_texts()) == [
        "pay-eus-old",
        "pay-eus-win",
        "pay-weu-1",
        "pay-weu-2",
    ]

    page.select_option("#id_eligibility", "blocked")
    page.click("form.filters button:has-text('Filter')")
    page.wait_for_url("**/clusters/?*eligibility=blocked*")
    names = page.locator("table.clusters tbody td:first-child a").all_inner_texts()
    assert names == ["pay-eus-old", "pay-eus-win"]
    assert page.locator("#id_eligibility").input_value() == "blocked"
    badge = page.locator("tr:has(a:text-is('pay-eus-old')) .badge.bad")
    assert badge.inner_text() == "1 blocker"
    assert badge.get_attribute("title", timeout=5_000).startswith("Runs Kubernetes 1.31.4")

    page.click("a:text-is('pay-eus-win')")
    page.wait_for_selector("h1:text-is('pay-eus-win')")
    reasons = page.locator("[data-testid=eligibility] ul.reasons li").all_inner_texts()
    assert reasons == [
        "Node pool 'win1' runs Windows; eBPF host routing supports Linux pools only. "
        "Move its workloads and remove the pool."
    ]
    assert page.locator("[data-section=preflight] h2").inner_text() == "Preflight"
    assert page.locator("nav.mainnav a[aria-current=page]").inner_text() == "Fleet"


@pytest.fixture
def running_sync(isolated_db: IsolatedDatabase) -> SyncRun:
    return make_sync_run(status=SyncStatus.RUNNING, started_at=timezone.now())


def test_the_overview_follows_a_running_sync_until_it_ends_then_asks_less_often(
    server: str, inventory: dict[str, str], running_sync: SyncRun, page: Page
):
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/sync/status/" in r.url else None)
    sign_in(page, server, inventory)
    assert page.locator("[data-testid=sync-running]").is_visible()

    page.wait_for_timeout(3_500)
    assert len(polls) >= 1  # htmx asked again after 3 s
    # Playwright's sync API runs an event loop in this thread, where Django refuses the ORM.
    finish = threading.Thread(target=_finish, args=(running_sync.pk,))
    finish.start()
    finish.join()
    page.wait_for_selector("[data-testid=sync-finished]", timeout=10_000)
    assert page.locator("[data-testid=sync-counts]").inner_text() == (
        "7 discovered, 0 changed, 0 removed, 0 unchanged"
    )
    asked = len(polls)
    page.wait_for_timeout(4_000)
    # With no sync running the overview asks every 15 s, no longer every 3 s.
    assert len(polls) == asked
    assert page.locator("#overview-live").get_attribute("hx-trigger") == "every 15s"


def _finish(pk: int) -> None:
    try:
        SyncRun.objects.filter(pk=pk).update(
            status=SyncStatus.SUCCEEDED,
            finished_at=timezone.now(),
            counts={"discovered": 7, "changed": 0, "removed": 0, "unchanged": 0},
        )
    finally:
        connection.close()
