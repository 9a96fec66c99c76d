"""Four eyes in a real browser (gunicorn, PostgreSQL): a user who is both operator and approver
edits another user's submitted plan and then finds no way to approve it, not even by posting
the approval by hand; a third person approves it; the refused attempt is in the audit log."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from accounts.roles import Role
from audit.models import AuditEvent
from rollout.choices import RolloutEvent, WaveStatus
from rollout.models import RolloutPlan
from tests.browser.app import CHROMIUM, CHROMIUM_ARGS, serve, sign_in
from tests.conftest import IsolatedDatabase
from tests.factories import PASSWORD, make_cluster, make_user, submitted_plan

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no Chromium at {CHROMIUM}: scripts/ensure_test_tools.sh installs Debian's",
    ),
]

# What the browser posts by hand, as someone who knows the URL would: the page's own CSRF token.
FORGED_APPROVAL = """async (url) => {
    const token = document.querySelector("input[name=csrfmiddlewaretoken]").value;
    const body = new URLSearchParams({csrfmiddlewaretoken: token, comment: "I checked it"});
    const response = await fetch(url, {method: "POST", body, credentials: "same-origin"});
    return response.status;
}"""


@pytest.fixture
def plan(isolated_db: IsolatedDatabase, settings) -> RolloutPlan:
    """Carla's plan over two clusters, submitted; Olga (operator and approver) and Arun
    (approver) can sign in. Committed to the database the server uses."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    make_cluster(name="aks-canary")
    make_cluster(name="aks-rest")
    make_user(Role.OPERATOR, Role.APPROVER, username="olga")
    make_user(Role.APPROVER, username="arun")
    carla = make_user(Role.OPERATOR, username="carla")
    return submitted_plan(carla, name="canary-first", wave_spec="1, 100%")


@pytest.fixture
def server(isolated_db: IsolatedDatabase, plan, tmp_path: Path) -> Iterator[str]:
    with serve(isolated_db.url, tmp_path) as base:
        yield base


@pytest.fixture
def browser_pages() -> Iterator[tuple[Page, Page]]:
    """Two tabs in separate sessions: Olga's and Arun's."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tabs = []
            for _ in range(2):
                tab = browser.new_context().new_page()
                tab.set_default_timeout(15_000)
                tabs.append(tab)
            yield tabs[0], tabs[1]
        finally:
            browser.close()


def test_an_approver_who_edited_the_plan_cannot_approve_it_and_a_third_person_does(
    server: str, plan: RolloutPlan, browser_pages: tuple[Page, Page], monkeypatch
):
    # The test reads the database between clicks, in the thread where Playwright's event loop
    # runs; nothing here is concurrent.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    olga, arun = browser_pages
    plan_url = f"{server}/plans/{plan.pk}/"

    # Olga edits Carla's submitted plan: it is submitted again, as her version.
    sign_in(olga, server, {"username": "olga", "password": PASSWORD})
    olga.goto(plan_url)
    olga.click("[data-testid=edit-plan]")
    olga.fill("#id_concurrency", "2")
    olga.click("button:has-text('Save and submit again')")
    olga.wait_for_url(re.compile(re.escape(plan_url) + "$"))
    expect(olga.locator("[data-testid=wave-1] [data-testid=wave-status]")).to_have_text(
        "Awaiting approval"
    )
    expect(olga.locator("[data-testid=authors]")).to_contain_text("olga (edited")

    # She finds no way to approve it, and the page says why.
    expect(olga.locator("[data-testid=approve]")).to_have_count(0)
    expect(olga.locator("[data-testid=wave-1] [data-testid=four-eyes]")).to_have_text(
        "You edited plan 'canary-first': another approver, who did not write it, must decide "
        "its waves (four eyes)."
    )
    olga.goto(f"{plan_url}waves/1/")
    expect(olga.locator("[data-testid=approve]")).to_have_count(0)
    expect(olga.locator("[data-testid=four-eyes]")).to_contain_text("You edited plan")

    # Posting the approval by hand is refused too (the page comes back with the refusal).
    wave = plan.waves.get(index=1)
    status = olga.evaluate(FORGED_APPROVAL, f"{plan_url}waves/{wave.pk}/approve")
    assert status == 200  # redirected back to the plan, with the refusal as a message
    olga.goto(plan_url)
    wave.refresh_from_db()
    assert wave.status == WaveStatus.AWAITING_APPROVAL

    # A third person, who did not write it, approves it through the page.
    sign_in(arun, server, {"username": "arun", "password": PASSWORD})
    arun.goto(plan_url)
    arun.fill("[data-testid=wave-1] input[name=comment]", "canary looks right")
    arun.click("[data-testid=wave-1] [data-testid=approve]")
    expect(arun.locator("ul.messages")).to_contain_text("You approved wave 1")
    expect(arun.locator("[data-testid=wave-1] [data-testid=decisions]")).to_contain_text(
        "Approved by arun"
    )
    wave.refresh_from_db()
    assert wave.status in (WaveStatus.APPROVED, WaveStatus.RUNNING)

    # The refused attempt is in the audit log: who tried what, and why it was refused.
    refused = AuditEvent.objects.get(action=RolloutEvent.DECISION_REFUSED)
    assert refused.actor_name == "olga"
    assert refused.after["tried"] == "approve"
    assert refused.after["refusal"].startswith("You edited plan 'canary-first'")
