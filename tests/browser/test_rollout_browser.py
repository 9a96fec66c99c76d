"""In a real browser against the real app (gunicorn, a Celery worker and beat, PostgreSQL, aksim):
an operator creates a plan through the new-plan form and its live preview, a second person
approves each wave as it comes up, and the operator's plan page, opened once and never
reloaded, follows the rollout through htmx polling until it reads completed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from accounts.roles import Role
from fleet.choices import SyncTrigger
from fleet.sync import run_sync
from tests.aksim.builders import eligible_clean
from tests.aksim_server import Aksim
from tests.browser.app import CHROMIUM, CHROMIUM_ARGS, serve, sign_in
from tests.conftest import IsolatedDatabase, Worker, start_beat, start_worker
from tests.factories import PASSWORD, make_user

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no Chromium at {CHROMIUM}: scripts/ensure_test_tools.sh installs Debian's",
    ),
]

CLUSTERS = 4  # waves "1, 50%, 100%" cut these into waves of 1, 1 and 2
WAVE_SIZES = [1, 1, 2]
# Long enough for a wave of aksim clusters (time scale 600) and a 3 s poll, short enough that a
# page which stopped updating fails the test quickly.
WAVE_SECONDS = 45
ENGINE_ENV = {
    "WAVEGATE_SCAN_POLL_SECONDS": "0.05",
    "WAVEGATE_SCAN_DEADLINE_SECONDS": "20",
    "WAVEGATE_ENGINE_TICK_SECONDS": "0.5",
    "LOG_LEVEL": "WARNING",
}


@dataclass(frozen=True)
class Scenario:
    """Who signs in, and the clusters the plan selects."""

    operator: dict[str, str]
    approver: dict[str, str]
    clusters: list[str]


@pytest.fixture
def scenario(isolated_db: IsolatedDatabase, wavegate_on_aksim: Aksim, settings) -> Scenario:
    """The test fleet synced from aksim, and an operator and an approver, committed to the
    isolated database every process of this test uses."""
    assert run_sync(SyncTrigger.COMMAND).status == "succeeded"
    # The suite hashes passwords with MD5 for speed; the server only knows the real hashers.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    # Olga is an approver too: her own plan's missing approve button is then four eyes, not
    # her role.
    make_user(Role.OPERATOR, Role.APPROVER, username="olga")
    make_user(Role.APPROVER, username="arun")
    # Clusters aksim lets Wavegate reach and change (public API server, changes allowed any
    # time, no iptables rules of their own): every one should end at BpfVeth.
    clean = sorted(
        c.name for c in wavegate_on_aksim.fleet.clusters if eligible_clean(c) and not c.private
    )
    assert len(clean) >= CLUSTERS, "the test fleet has too few clean clusters; change FLEET_SEED"
    return Scenario(
        operator={"username": "olga", "password": PASSWORD},
        approver={"username": "arun", "password": PASSWORD},
        clusters=clean[:CLUSTERS],
    )


@pytest.fixture
def engine(
    isolated_db: IsolatedDatabase, wavegate_on_aksim: Aksim, scenario: Scenario, tmp_path: Path
) -> Iterator[Worker]:
    """A real Celery worker and beat on the isolated database, driving plans against aksim."""
    env = {**wavegate_on_aksim.wavegate_env(), **ENGINE_ENV}
    worker = start_worker(
        isolated_db.url, tmp_path / "worker.log", env, "--pool", "threads", "--concurrency", "8"
    )
    beat = start_beat(isolated_db.url, worker, tmp_path, env)
    try:
        yield worker
    finally:
        beat.stop()
        worker.process.stop()


@pytest.fixture
def server(
    isolated_db: IsolatedDatabase,
    wavegate_on_aksim: Aksim,
    scenario: Scenario,
    engine: Worker,
    tmp_path: Path,
) -> Iterator[str]:
    """The app under gunicorn on the engine's database and queue; its base URL."""
    with serve(
        isolated_db.url, tmp_path, CELERY_QUEUE=engine.queue, **wavegate_on_aksim.wavegate_env()
    ) as base:
        yield base


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Headless Chromium. Request it last: while it is open, Playwright's event loop runs in
    this thread and Django refuses the ORM here."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def tab(browser: Browser) -> Page:
    """A tab in a context of its own: its own cookies, so its own signed-in person."""
    page = browser.new_context().new_page()
    page.set_default_timeout(15_000)
    return page


# Every time htmx swaps the plan's cards in, note what the page then shows.
WATCH_SWAPS = """() => {
  window.__noReload = 1;
  window.__swaps = [];
  document.body.addEventListener('htmx:afterSettle', () => {
    const cards = document.querySelector('#plan-cards');
    if (!cards) return;
    window.__swaps.push({
      plan: cards.querySelector('[data-testid=plan-status]').textContent.trim(),
      waves: [...cards.querySelectorAll('section.wave [data-testid=wave-status]')]
        .map((badge) => badge.textContent.trim()),
      approveButtons: cards.querySelectorAll('[data-testid=approve]').length,
    });
  });
}"""


STALE = (
    "the operator's plan page did not follow the plan without a reload "
    "(htmx polling of /plans/<pk>/cards)"
)


def wave_status(page: Page, index: int) -> Locator:
    return page.locator(f"[data-testid=wave-{index}] [data-testid=wave-status]")


def approve(page: Page, index: int, comment: str) -> None:
    """Approve wave `index` on the approver's plan page, once it awaits approval."""
    card = page.locator(f"[data-testid=wave-{index}]")
    expect(wave_status(page, index)).to_have_text("Awaiting approval", timeout=WAVE_SECONDS * 1000)
    # A poll already in flight when the comment is typed swaps the form back in empty; the
    # empty, required comment then stops the submit. Type it again in that case.
    for _ in range(3):
        card.get_by_label("Approval comment").fill(comment)
        try:
            with page.expect_navigation(timeout=5_000):
                card.locator("[data-testid=approve]").click()
        except PlaywrightTimeout:
            continue
        break
    expect(page.locator("ul.messages")).to_contain_text(f"You approved wave {index}")


@pytest.mark.timeout(240)
def test_an_operator_follows_a_plan_that_a_second_person_approves_wave_by_wave_to_completion(
    wavegate_on_aksim: Aksim, scenario: Scenario, server: str, browser: Browser
):
    operator, approver = tab(browser), tab(browser)

    # --- the operator plans: the form, its live preview, create and submit -------------------
    sign_in(operator, server, scenario.operator)
    operator.click("nav.mainnav a:text-is('Plans')")
    operator.wait_for_url(server + "/plans/")
    operator.click("[data-testid=new-plan]")
    operator.wait_for_url(server + "/plans/new")
    form = operator.locator("[data-testid=plan-form]")
    form.locator("#id_name").fill("bpfveth-four-clusters")
    form.locator("#id_names").fill("\n".join(scenario.clusters))
    form.locator("#id_wave_spec").fill("1, 50%, 100%")
    form.locator("#id_concurrency").fill("2")
    form.locator("#id_failure_budget").fill("100%")
    form.locator("#id_soak_minutes").fill("0")
    form.locator("#id_respect_maintenance_windows").uncheck()
    expect(operator.locator("[data-testid=preview-summary]")).to_contain_text(
        f"{CLUSTERS} clusters in {len(WAVE_SIZES)} waves, 0 set apart", timeout=10_000
    )
    sizes = operator.locator("[data-testid=preview-wave-size]").all_inner_texts()
    assert [int(s) for s in sizes] == WAVE_SIZES
    operator.click("button:has-text('Create and submit')")
    operator.wait_for_url(re.compile(re.escape(server) + r"/plans/\d+/$"))
    plan_url = operator.url
    expect(operator.locator("ul.messages")).to_contain_text(
        "Plan 'bpfveth-four-clusters' submitted: its first wave awaits approval."
    )

    # --- from here on, the operator's page is never reloaded --------------------------------
    operator.evaluate(WATCH_SWAPS)
    navigations: list[str] = []
    operator.on(
        "framenavigated",
        lambda frame: navigations.append(frame.url) if frame == operator.main_frame else None,
    )
    polls: list[str] = []
    operator.on("request", lambda r: polls.append(r.url) if r.url.endswith("/cards") else None)
    expect(operator.locator("[data-testid=plan-status]")).to_have_text("Submitted")
    expect(wave_status(operator, 1)).to_have_text("Awaiting approval")
    expect(operator.locator("[data-testid=four-eyes]")).to_have_text(
        "You created plan 'bpfveth-four-clusters': another approver, who did not write it, "
        "must decide its waves (four eyes)."
    )
    assert operator.locator("[data-testid=approve]").count() == 0

    # --- a second person approves each wave as it comes up; the operator watches -------------
    sign_in(approver, server, scenario.approver)
    approver.goto(plan_url)
    plan_status = operator.locator("[data-testid=plan-status]")
    for index in range(1, len(WAVE_SIZES) + 1):
        # The operator's page shows the wave come up for approval once the previous one is done.
        # Each state holds until the approver acts, so the page cannot miss it between polls.
        expect(wave_status(operator, index), STALE).to_have_text(
            "Awaiting approval", timeout=WAVE_SECONDS * 1000
        )
        if index > 1:
            expect(wave_status(operator, index - 1), STALE).to_have_text("Done")
            expect(plan_status, STALE).to_have_text("Running")
        approve(approver, index, f"wave {index} looks fine")
        # ... and then who approved it, and why.
        decisions = operator.locator(f"[data-testid=wave-{index}] [data-testid=decisions]")
        expect(decisions, STALE).to_contain_text("Approved by arun", timeout=10_000)
        expect(decisions).to_contain_text(f"wave {index} looks fine")

    # --- the operator's page reads completed, every cluster changed --------------------------
    expect(plan_status, STALE).to_have_text("Completed", timeout=WAVE_SECONDS * 1000)
    for index in range(1, len(WAVE_SIZES) + 1):
        expect(wave_status(operator, index)).to_have_text("Done")
    rows = operator.locator("#plan-cards table.targets tbody tr")
    expect(rows).to_have_count(CLUSTERS)
    assert sorted(rows.locator("td:first-child a").all_inner_texts()) == scenario.clusters
    for badge in rows.locator("td:nth-child(2) .badge").all():
        expect(badge).to_have_class(re.compile(r"\benabled\b"))
    expect(operator.locator("[data-testid=four-eyes]")).to_have_count(0)

    # All of it arrived through htmx on the page opened once.
    assert operator.evaluate("window.__noReload") == 1
    assert navigations == []
    assert operator.url == plan_url
    swaps = operator.evaluate("window.__swaps")
    assert swaps, "the operator's plan page never swapped its cards in"
    assert swaps[-1]["plan"] == "Completed"
    assert swaps[-1]["waves"] == ["Done"] * len(WAVE_SIZES)
    assert any(s["plan"] == "Running" for s in swaps)
    assert all(s["approveButtons"] == 0 for s in swaps)
    # A completed plan's cards carry no trigger: the page stops asking.
    expect(operator.locator("#plan-cards")).not_to_have_attribute("hx-get", re.compile(".*"))
    asked = len(polls)
    operator.wait_for_timeout(3_500)
    assert len(polls) == asked

    # And aksim agrees: every selected cluster now runs BpfVeth.
    by_name = {c.name: c for c in wavegate_on_aksim.fleet.clusters}
    for name in scenario.clusters:
        assert wavegate_on_aksim.truth(by_name[name])["accelerationMode"] == "BpfVeth", name
