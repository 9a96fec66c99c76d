"""An operator's whole day in a real browser (issue 17), on the demo's simulated fleet (aksim's
"demo" fleet, synced and scanned by the real code) with gunicorn, a Celery worker and beat and
PostgreSQL: sign in, the overview, a sync, "Scan all eligible clusters", a blocked cluster, a
plan with its preview, submitted; a second person approves; the operator watches the first
wave run to its end; then an emergency stop and its lift.

Every page it visits is saved at 1280x800 and at 1920x1080 under var/artefacts/operator-day/
(README.md names the folder). It asserts what a person would read: the overview's counts, the
plan's progress and finish estimate, and the blockers table following scan-all without a
reload."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connections
from playwright.sync_api import Browser, Page, expect, sync_playwright

from accounts.roles import Role
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

ARTEFACTS = Path(django_settings.BASE_DIR) / "var" / "artefacts" / "operator-day"
SIZES = [(1280, 800), (1920, 1080)]
CLUSTERS = 4  # waves "2, 100%": two waves of two
ENGINE_ENV = {
    "WAVEGATE_SCAN_POLL_SECONDS": "0.05",
    "WAVEGATE_SCAN_DEADLINE_SECONDS": "20",
    "WAVEGATE_ENGINE_TICK_SECONDS": "0.5",
    "LOG_LEVEL": "WARNING",
}
SLOW = 90_000  # ms: a sync, a fleet's scans or a wave on aksim, with 3 s polls


@pytest.fixture
def people(isolated_db: IsolatedDatabase, settings) -> dict[str, dict[str, str]]:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    make_user(Role.OPERATOR, username="olga")
    make_user(Role.APPROVER, username="arun")
    return {
        "operator": {"username": "olga", "password": PASSWORD},
        "approver": {"username": "arun", "password": PASSWORD},
    }


@pytest.fixture
def server(
    isolated_db: IsolatedDatabase, wavegate_on_aksim: Aksim, people, tmp_path: Path
) -> Iterator[str]:
    env = {**wavegate_on_aksim.wavegate_env(), **ENGINE_ENV}
    worker: Worker = start_worker(
        isolated_db.url, tmp_path / "worker.log", env, "--pool", "threads", "--concurrency", "8"
    )
    beat = start_beat(isolated_db.url, worker, tmp_path, env)
    try:
        with serve(isolated_db.url, tmp_path, CELERY_QUEUE=worker.queue, **env) as base:
            yield base
    finally:
        beat.stop()
        worker.process.stop()
        connections.close_all()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Camera:
    """Saves each page visited at both sizes, numbered in the order of the day."""

    def __init__(self) -> None:
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        for old in ARTEFACTS.glob("*.png"):
            old.unlink()
        self.shots: list[Path] = []

    def __call__(self, page: Page, name: str) -> None:
        n = len(self.shots) // len(SIZES) + 1
        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            path = ARTEFACTS / f"{n:02d}-{name}-{width}x{height}.png"
            page.screenshot(path=str(path), full_page=True)
            # Nothing wider than the window at either size (the layout uses the width it has).
            overflow = page.evaluate(
                "document.scrollingElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{name} at {width}x{height} overflows by {overflow} px"
            self.shots.append(path)
        page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})


def tab(browser: Browser) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.set_default_timeout(15_000)
    return page


def number(page: Page, selector: str) -> int:
    return int(page.locator(selector).inner_text().strip().replace(",", ""))


def verdict(page: Page, status: str, column: int = 2) -> int:
    """The blockers page's verdict table: eligible (column 2) or all live (3) clusters."""
    cell = page.locator(f"[data-testid=verdicts] tr[data-status={status}] td:nth-child({column})")
    return int(cell.inner_text().strip())


@pytest.mark.timeout(420)
def test_an_operators_day(wavegate_on_aksim: Aksim, people, server: str, browser: Browser):
    fleet = wavegate_on_aksim.fleet.clusters
    clean = sorted(c.name for c in fleet if eligible_clean(c) and not c.private)[:CLUSTERS]
    shoot = Camera()
    operator = tab(browser)

    # --- morning: sign in; the overview is empty until the first sync -------------------------
    operator.goto(server + "/accounts/login/")
    shoot(operator, "sign-in")
    sign_in(operator, server, people["operator"])
    expect(operator.locator("[data-testid=empty-inventory]")).to_be_visible()
    shoot(operator, "overview-empty")
    operator.click("#sync-status button:has-text('Sync now')")
    operator.wait_for_url(re.compile(re.escape(server) + r"/\?after=\d+$"))
    loaded = operator.evaluate("performance.timeOrigin")
    # The overview follows the sync and fills in without a reload.
    expect(operator.locator("[data-testid=sync-finished]")).to_be_visible(timeout=SLOW)
    eligibility = operator.locator("[data-testid=tally-eligibility] .num").all_inner_texts()
    assert sum(int(n) for n in eligibility) == len(fleet)
    modes = dict(
        zip(
            operator.locator("[data-testid=tally-mode] li span:first-child").all_inner_texts(),
            (int(n) for n in operator.locator("[data-testid=tally-mode] .num").all_inner_texts()),
            strict=True,
        )
    )
    assert sum(modes.values()) == len(fleet)
    at_bpfveth = modes["BpfVeth"]
    assert at_bpfveth == sum(c.acceleration_mode == "BpfVeth" for c in fleet)
    assert number(operator, "[data-testid=overview-stale]") == 0
    expect(operator.locator("[data-testid=overview-scanned]")).to_contain_text(
        f"0 live clusters scanned, {len(fleet)} never scanned"
    )
    expect(operator.locator("[data-testid=mode-chart] svg")).to_be_visible()
    assert operator.evaluate("performance.timeOrigin") == loaded  # never reloaded
    shoot(operator, "overview-synced")

    # --- scan every eligible cluster; the blockers page follows to the results --------------
    operator.click("nav.mainnav a:text-is('Preflight')")
    operator.wait_for_url(server + "/blockers/")
    never = verdict(operator, "never")
    assert never > 0
    assert verdict(operator, "blocked") == 0
    shoot(operator, "preflight-before-scan")
    operator.click("button:has-text('Scan all eligible clusters')")
    operator.wait_for_url(server + "/blockers/")
    expect(operator.locator("ul.messages")).to_contain_text(f"{never} scans queued")
    loaded = operator.evaluate("performance.timeOrigin")
    expect(operator.locator("[data-testid=scan-progress]")).to_be_visible()
    shoot(operator, "preflight-scanning")
    expect(operator.locator("[data-testid=scans-finished]")).to_be_visible(timeout=SLOW)
    # The verdicts and the origins arrived with the last poll: no reload, nothing stale.
    assert operator.evaluate("performance.timeOrigin") == loaded
    assert verdict(operator, "never") == 0
    blocked = verdict(operator, "blocked")
    assert blocked > 0
    assert verdict(operator, "clean") >= CLUSTERS
    origins = operator.locator("[data-testid=origins] tbody tr")
    assert origins.count() > 0
    expect(operator.locator("[data-testid=latest-results]")).to_be_visible()
    expect(operator.locator("#blockers-live")).to_have_attribute("hx-trigger", "every 30s")
    shoot(operator, "preflight-scanned")

    # --- open a blocked cluster and read why --------------------------------------------------
    origins.first.locator("a").click()
    operator.wait_for_url(re.compile(r".*/blockers/\?origin="))
    shoot(operator, "blocked-by-origin")
    operator.locator("main table a").first.click()
    operator.wait_for_url(re.compile(r".*/clusters/\d+/$"))
    expect(operator.locator("#preflight-panel")).to_contain_text("Blocking rules by origin")
    shoot(operator, "blocked-cluster")

    # --- plan with the preview, then submit -----------------------------------------------------
    operator.click("nav.mainnav a:text-is('Plans')")
    operator.wait_for_url(server + "/plans/")
    shoot(operator, "plans")
    operator.click("[data-testid=new-plan]")
    operator.wait_for_url(server + "/plans/new")
    form = operator.locator("[data-testid=plan-form]")
    form.locator("#id_name").fill("bpfveth-morning")
    form.locator("#id_names").fill("\n".join(clean))
    form.locator("#id_wave_spec").fill("2, 100%")
    form.locator("#id_concurrency").fill("2")
    form.locator("#id_failure_budget").fill("0")
    form.locator("#id_soak_minutes").fill("0")
    form.locator("#id_respect_maintenance_windows").uncheck()
    expect(operator.locator("[data-testid=preview-summary]")).to_contain_text(
        f"{CLUSTERS} clusters in 2 waves, 0 set apart", timeout=10_000
    )
    # The preview follows the form: with windows ignored nobody waits for one.
    expect(operator.locator("[data-testid=preview-waiting]")).to_have_count(0, timeout=10_000)
    expect(operator.locator("[data-testid=preview-clusters] tbody tr")).to_have_count(CLUSTERS)
    shoot(operator, "plan-preview")
    operator.click("button:has-text('Create and submit')")
    operator.wait_for_url(re.compile(re.escape(server) + r"/plans/\d+/$"))
    plan_url = operator.url
    expect(operator.locator("[data-testid=plan-progress-summary]")).to_have_text(
        f"0 of {CLUSTERS} clusters done, {CLUSTERS} not started"
    )
    estimate = operator.locator("[data-testid=plan-estimate]")
    expect(estimate).to_contain_text("if the 2 approvals still needed are given as soon as asked")
    # Two waves of two clusters, both at once, no soak: one assumed operation time each.
    minutes = django_settings.WAVEGATE_ESTIMATED_OPERATION_MINUTES * 2
    expect(operator.locator("[data-testid=plan-finish-in]")).to_have_text(
        f"{minutes // 60} h" if minutes % 60 == 0 else re.compile(rf"\b{minutes % 60} min$")
    )
    expect(operator.locator("[data-testid=wave-awaits]")).to_have_text(
        "Waits for 1 approval from one of arun."
    )
    shoot(operator, "plan-submitted")

    # --- a second person approves; the operator's page follows the wave to its end -----------
    loaded = operator.evaluate("performance.timeOrigin")
    approver = tab(browser)
    sign_in(approver, server, people["approver"])
    awaiting = approver.locator("[data-testid=awaiting-approval]")
    expect(awaiting).to_contain_text("Wave 1 of bpfveth-morning waits for 1 approval")
    shoot(approver, "approver-overview")
    approver.goto(plan_url)
    card = approver.locator("[data-testid=wave-1]")
    card.get_by_label("Approval comment").fill("morning window, clean scans")
    with approver.expect_navigation():
        card.locator("[data-testid=approve]").click()
    expect(approver.locator("ul.messages")).to_contain_text("You approved wave 1")
    shoot(approver, "approver-approved")

    wave_1 = operator.locator("[data-testid=wave-1] [data-testid=wave-status]")
    expect(wave_1).to_have_text("Done", timeout=SLOW)
    expect(operator.locator("[data-testid=plan-progress-summary]")).to_have_text(
        f"2 of {CLUSTERS} clusters done, 2 not started"
    )
    expect(operator.locator("[data-testid=plan-percent]")).to_have_text("50%")
    expect(operator.locator("[data-testid=count-done]")).to_have_text("2")
    expect(estimate).to_contain_text("if the 1 approval still needed is given as soon as asked")
    expect(operator.locator("[data-testid=wave-2] [data-testid=wave-awaits]")).to_be_visible()
    assert operator.evaluate("performance.timeOrigin") == loaded
    shoot(operator, "plan-wave-1-done")

    operator.click("nav.mainnav a:text-is('Fleet')")
    operator.wait_for_url(server + "/")
    at_now = operator.locator("[data-testid=tally-mode] li", has_text="BpfVeth").locator(".num")
    expect(at_now).to_have_text(str(at_bpfveth + 2), timeout=SLOW)
    expect(operator.locator("[data-testid=enabled-today]")).to_have_text("2")
    shoot(operator, "overview-after-wave-1")

    # --- emergency stop, with a reason, then lifted --------------------------------------------
    operator.click("[data-testid=header-emergency-stop] button")
    operator.wait_for_url(re.compile(r".*/emergency-stop\??$"))
    expect(operator.locator("[data-testid=stop-plans]")).to_have_text("It pauses 1 plan:")
    shoot(operator, "emergency-stop-confirm")
    operator.fill("#stop-reason", "latency alarm in westeurope")
    operator.click("button:has-text('Stop every plan now')")
    banner = operator.locator("[data-testid=emergency-banner]")
    expect(banner).to_contain_text("latency alarm in westeurope")
    shoot(operator, "emergency-stop-in-force")
    operator.goto(plan_url)
    expect(operator.locator("[data-testid=plan-status]")).to_have_text("Paused")
    expect(operator.locator("[data-testid=resume-held]")).to_be_visible()
    expect(banner).to_be_visible()
    shoot(operator, "plan-paused-by-stop")
    banner.locator("[data-testid=emergency-lift-link]").click()
    operator.fill("textarea[name=reason]", "alarm was a dashboard glitch")
    operator.click("[data-testid=emergency-lift-form] button")
    expect(operator.locator("[data-testid=emergency-banner]")).to_have_count(0)
    shoot(operator, "emergency-stop-lifted")

    assert all(p.stat().st_size > 5_000 for p in shoot.shots)
