"""In a real browser against the real app (gunicorn, PostgreSQL): the new-plan form's rings,
regions and subscriptions are checkbox groups that a mouse alone and a keyboard alone operate,
each change updating the preview; a long group's filter box narrows it without asking for a
preview or submitting the form; the plan created covers what was checked (issue 17)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from accounts.roles import Role
from tests.browser.app import CHROMIUM, CHROMIUM_ARGS, serve, sign_in
from tests.conftest import IsolatedDatabase
from tests.factories import PASSWORD, make_cluster, make_subscription, make_user

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no Chromium at {CHROMIUM}: scripts/ensure_test_tools.sh installs Debian's",
    ),
]

TEAMS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]


@pytest.fixture
def operator(isolated_db: IsolatedDatabase, settings) -> dict[str, str]:
    """An operator, and a fleet of nine subscriptions (a long group, with a filter box): in
    each a canary cluster in westeurope and a broad one in northeurope."""
    # The suite hashes passwords with MD5 for speed; the server only knows the real hashers.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    user = make_user(Role.OPERATOR, username="olga")
    for team in TEAMS:
        subscription = make_subscription(name=f"{team}-prod")
        make_cluster(name=f"aks-{team}-canary", ring="canary", subscription=subscription)
        make_cluster(name=f"aks-{team}-broad", ring="broad", location="northeurope",
                     subscription=subscription)  # fmt: skip
    return {"username": user.username, "password": PASSWORD}


@pytest.fixture
def server(isolated_db: IsolatedDatabase, operator, tmp_path: Path) -> Iterator[str]:
    with serve(isolated_db.url, tmp_path) as base:
        yield base


@pytest.fixture
def page() -> Iterator[Page]:
    """A fresh Chromium tab. Request it last: while it is open, Playwright's event loop runs in
    this thread and Django refuses the ORM here."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            tab.set_default_timeout(15_000)
            yield tab
        finally:
            browser.close()


def summary(page: Page, clusters: int) -> None:
    expect(page.locator("[data-testid=preview-summary]")).to_contain_text(
        f"{clusters} clusters in", timeout=10_000
    )


def test_the_choices_are_checkboxes_a_mouse_or_a_keyboard_alone_operates(
    server: str, operator: dict[str, str], page: Page
):
    sign_in(page, server, operator)
    page.goto(server + "/plans/new")
    summary(page, 2 * len(TEAMS))
    rings = page.get_by_role("group", name="Rings")
    assert rings.get_by_role("checkbox").count() == 2

    # A mouse alone: one click on a ring's name checks it, and the preview follows.
    rings.get_by_text("canary").click()
    summary(page, len(TEAMS))
    cells = page.locator("[data-testid=preview-cluster] td:nth-child(4)").all_inner_texts()
    assert set(cells) == {"canary"}
    rings.get_by_text("canary").click()
    summary(page, 2 * len(TEAMS))

    # A keyboard alone: Tab reaches each checkbox, Space checks it.
    page.locator("#id_name").focus()
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "id_regions_0":
            break
    else:
        pytest.fail("Tab never reached the first region's checkbox")
    page.keyboard.press("Space")
    expect(page.locator("#id_regions_0")).to_be_checked()
    summary(page, len(TEAMS))
    cells = page.locator("[data-testid=preview-cluster] td:nth-child(5)").all_inner_texts()
    assert set(cells) == {"northeurope"}


def test_the_filter_box_narrows_a_long_group_and_the_plan_covers_what_is_checked(
    server: str, operator: dict[str, str], page: Page
):
    sign_in(page, server, operator)
    page.goto(server + "/plans/new")
    summary(page, 2 * len(TEAMS))
    subscriptions = page.get_by_role("group", name="Subscriptions")
    assert subscriptions.get_by_role("checkbox").count() == len(TEAMS)
    subscriptions.get_by_text("alpha-prod").click()
    summary(page, 2)

    page.wait_for_timeout(1_000)  # the click's delayed "input" preview, if any, has gone
    previews: list[str] = []
    page.on("request", lambda r: previews.append(r.url) if "preview" in r.url else None)
    search = subscriptions.get_by_label("Show only subscriptions containing")
    search.fill("echo")
    search.press("Enter")  # does not submit the plan
    shown = subscriptions.locator("li:visible")
    expect(shown).to_have_count(2)
    # The checked one stays in view.
    assert [t.split(" (")[0] for t in shown.all_inner_texts()] == ["alpha-prod", "echo-prod"]
    page.wait_for_timeout(1_000)
    assert previews == []  # typing in the filter changes no field: no preview asked for
    assert page.url == server + "/plans/new"
    subscriptions.get_by_text("echo-prod").click()
    summary(page, 4)
    search.fill("")
    expect(shown).to_have_count(len(TEAMS))

    page.fill("#id_name", "two teams")
    page.fill("#id_wave_spec", "100%")
    page.click("button:has-text('Create and submit')")
    page.wait_for_url(re.compile(re.escape(server) + r"/plans/\d+/$"))
    expect(page.locator("ul.messages")).to_contain_text("Plan 'two teams' submitted")
    page.click("[data-testid=edit-plan]")
    checked = [
        page.locator(f"label[for={box.get_attribute('id')}]").inner_text()
        for box in page.locator("input[name=subscriptions]:checked").all()
    ]
    assert [c.split(" (")[0] for c in checked] == ["alpha-prod", "echo-prod"]
