"""Every page in a real browser (gunicorn, PostgreSQL, Chromium) over a small fleet with plans in
several states: axe-core finds no serious or critical accessibility violation on any of them,
every visible control of the main pages takes keyboard focus with a visible ring, and at
1280x800 and 1920x1080 the pages use the whole width without scrolling sideways, with tables
whose headers stay in view.

The pages are the GET rows of tests/test_url_access.py's table, so a new page is checked here
as soon as it has its row; only downloads and htmx fragments are left out (the fragments are
checked inside the pages that hold them)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.db import transaction
from django.test import Client
from django.urls import reverse
from playwright.sync_api import Browser, Page, sync_playwright

import audit
from accounts.roles import Role
from fleet import snapshots
from fleet.choices import SyncStatus
from rollout import actions
from rollout.choices import PlanStatus, TargetStatus, WaveStatus
from rollout.models import RolloutPlan, RolloutTarget, Wave
from tests.browser.app import CHROMIUM, CHROMIUM_ARGS, serve, sign_in
from tests.conftest import IsolatedDatabase
from tests.factories import (
    PASSWORD,
    approved_plan,
    make_accepted_owner,
    make_cluster,
    make_plan,
    make_scan,
    make_subscription,
    make_sync_run,
    make_user,
    submitted_plan,
)
from tests.test_url_access import ACCESS, is_api

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no Chromium at {CHROMIUM}: scripts/ensure_test_tools.sh installs Debian's",
    ),
]

# GET URLs that are no page of their own: downloads, and htmx fragments of the pages above them.
NOT_PAGES = {
    "fleet:sync_status": "fragment of the overview",
    "fleet:cluster_timeline": "fragment of a cluster's page",
    "preflight:cluster_preflight": "fragment of a cluster's page",
    "preflight:scan_progress": "fragment of the blockers page",
    "preflight:scan_findings": "a text download",
    "rollout:plan_cards": "fragment of a plan's page",
    "rollout:wave_panel": "fragment of a wave's page",
    "rollout:evidence_pack": "a zip download",
    "audit:export": "a CSV or JSON download",
    "metrics": "Prometheus's plain text",
    "healthz": "JSON for probes",
    "favicon": "an icon",
}
SERIOUS = {"serious", "critical"}
FAILURE_LIMIT = 5  # settings.AXES_FAILURE_LIMIT's default
AXE = Axe()


@dataclass(frozen=True)
class Site:
    """Who signs in, and the path of every page to visit, the main ones by name."""

    admin: dict[str, str]
    viewer: dict[str, str]
    pages: list[str]
    main: dict[str, str]


def fleet_with_plans() -> dict[str, RolloutPlan]:
    """Clusters clean, blocked, ineligible, never scanned and at BpfVeth; plans completed,
    running (targets in most states), paused, rejected, awaiting a second approval, and a
    draft; each plan over clusters of its own."""
    payments = make_subscription(name="payments-prod")
    for group, n in [("done", 5), ("run", 8), ("pause", 1), ("rej", 1), ("wait", 1), ("draft", 1)]:
        for i in range(n):
            make_scan(make_cluster(name=f"aks-{group}-{i}", subscription=payments))
    make_scan(make_cluster(name="aks-docker"), findings=[{}, {"chain": "DOCKER"}])
    make_scan(make_cluster(name="aks-cilium"), findings=[{"origin": "cilium", "chain": "CILIUM"}])
    make_cluster(name="aks-old", kubernetes_version="1.31.4")
    make_cluster(name="aks-fast", acceleration_mode="BpfVeth", ring="canary")
    make_cluster(name="aks-never")
    make_sync_run()
    make_sync_run(status=SyncStatus.FAILED, error="ARM answered 503 three times")
    make_accepted_owner()
    make_accepted_owner(name="log-agent", chain="LOG-AGENT", confirmed_at=None)
    snapshots.record()

    olga = make_user(Role.OPERATOR, username="olga")
    arun = make_user(Role.APPROVER, username="arun")
    T = TargetStatus
    done = submitted_plan(
        olga, name="done", wave_spec="1, 2, 100%", selection={"names": ["aks-done-*"]}
    )
    for wave in done.waves.all():  # wave 1 enabled, wave 2 skipped, wave 3 one failed
        for n, target in enumerate(wave.targets.order_by("position")):
            state = [T.ENABLED, T.SKIPPED, T.ENABLED if n else T.FAILED][wave.index - 1]
            RolloutTarget.objects.filter(pk=target.pk).update(status=state)
        Wave.objects.filter(pk=wave.pk).update(status=WaveStatus.DONE)
    RolloutPlan.objects.filter(pk=done.pk).update(status=PlanStatus.COMPLETED)

    running = approved_plan(
        olga, arun, name="running", wave_spec="6, 100%", selection={"names": ["aks-run-*"]}
    )
    first = running.waves.get(index=1)
    states = [T.ENABLED, T.ENABLING, T.VERIFYING, T.FAILED, T.BLOCKED, T.ROLLED_BACK]
    for target, state in zip(first.targets.order_by("position"), states, strict=True):
        RolloutTarget.objects.filter(pk=target.pk).update(status=state)
    Wave.objects.filter(pk=first.pk).update(status=WaveStatus.RUNNING)
    RolloutPlan.objects.filter(pk=running.pk).update(status=PlanStatus.RUNNING)

    paused = submitted_plan(olga, name="paused", selection={"names": ["aks-pause-*"]})
    actions.pause_plan(paused, acting_user=olga, reason="change freeze")
    rejected = submitted_plan(olga, name="rejected", selection={"names": ["aks-rej-*"]})
    actions.reject_wave(rejected.waves.get(), acting_user=arun, comment="not now")
    waiting = submitted_plan(
        olga, name="waiting", selection={"names": ["aks-wait-*"]}, approvals_needed=2
    )
    actions.approve_wave(waiting.waves.get(), acting_user=arun, comment="fine by me")
    draft = make_plan(olga, name="draft", selection={"names": ["aks-draft-*"]})
    return {p.name: p for p in (done, running, paused, rejected, waiting, draft)}


def page_paths(plans: dict[str, RolloutPlan], some: dict[str, int | str]) -> list[str]:
    """The path of every page of ACCESS a GET reads: a plan's pages for each plan, a wave's for
    each wave."""
    paths = []
    for name, (method, kwargs, _) in sorted(ACCESS.items()):
        if method != "GET" or name in NOT_PAGES:
            continue
        if is_api(name):  # JSON, not a page
            continue
        if not name.startswith("rollout:") or "pk" not in kwargs:
            paths.append(reverse(name, kwargs={k: some[k] for k in kwargs}))
            continue
        for plan in plans.values():
            if "index" not in kwargs:
                paths.append(reverse(name, kwargs={"pk": plan.pk}))
            for wave in plan.waves.all() if "index" in kwargs else ():
                paths.append(reverse(name, kwargs={"pk": plan.pk, "index": wave.index}))
    return paths


@pytest.fixture
def site(isolated_db: IsolatedDatabase, settings) -> Site:
    """The fleet, its plans, an audited change and a locked-out user name and address,
    committed to the isolated database the server uses."""
    plans = fleet_with_plans()
    changed = plans["running"].targets.order_by("position")[0].cluster
    blocked = make_cluster(name="aks-blocked-long-name-of-a-cluster-in-westeurope")
    make_scan(blocked, findings=[{"rule": "-A DOCKER-USER -s 10.0.0.0/8 " + "-m comment " * 20}])
    with transaction.atomic():
        event = audit.record(
            "cluster.changed",
            obj=changed,
            before={"kubernetes_version": "1.32.5", "ring": "broad"},
            after={"kubernetes_version": "1.33.2", "ring": "broad"},
        )
    for n in range(FAILURE_LIMIT):  # locks out the user name olga and the address
        Client().post(
            reverse("accounts:login"),
            {"username": "olga", "password": f"guess {n}"},
            REMOTE_ADDR="203.0.113.9",
        )
    # The suite hashes passwords with MD5 for speed; the server only knows the real hashers.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    make_user(Role.ADMIN, username="ada")
    make_user(Role.VIEWER, username="vera")
    some: dict[str, int | str] = {"pk": blocked.pk, "seq": event.seq}
    running = plans["running"]
    return Site(
        admin={"username": "ada", "password": PASSWORD},
        viewer={"username": "vera", "password": PASSWORD},
        pages=page_paths(plans, some),
        main={
            "overview": reverse("fleet:overview"),
            "clusters": reverse("fleet:clusters"),
            "cluster": reverse("fleet:cluster", kwargs={"pk": blocked.pk}),
            "blockers": reverse("preflight:blockers"),
            "owners": reverse("preflight:owners"),
            "plans": reverse("rollout:plans"),
            "new plan": reverse("rollout:plan_new"),
            "plan": reverse("rollout:plan", kwargs={"pk": running.pk}),
            "wave": reverse("rollout:wave", kwargs={"pk": running.pk, "index": 1}),
            "audit": reverse("audit:events"),
            "event": reverse("audit:event", kwargs={"seq": event.seq}),
            "lock-outs": reverse("accounts:lockouts"),
            "emergency stop": reverse("rollout:emergency_stop"),
        },
    )


@pytest.fixture
def server(isolated_db: IsolatedDatabase, site: Site, tmp_path: Path) -> Iterator[str]:
    key = tmp_path / "audit.key"
    key.write_text("browser-test-audit-key-" + "7" * 40)
    with serve(
        isolated_db.url,
        tmp_path,
        WAVEGATE_AUDIT_HMAC_KEY_FILE=str(key),
        WAVEGATE_AUDIT_CHECKPOINT_FILE=str(tmp_path / "checkpoints.jsonl"),
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


def tab(browser: Browser, width: int = 1280, height: int = 800) -> Page:
    """A tab in a context of its own (its own cookies), with a window of that size."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.set_default_timeout(15_000)
    return page


# No htmx request under way: what a page loads at once (hx-trigger="load") has arrived.
HTMX_IDLE = "() => !document.querySelector('.htmx-request')"


def settle(page: Page, url: str, status: int = 200) -> None:
    response = page.goto(url)
    assert response is not None
    assert response.status == status, f"{url}: {response.status}"
    page.wait_for_function(HTMX_IDLE)


def serious_violations(page: Page) -> list[str]:
    """Each serious or critical axe-core violation on the page, with the elements it names."""
    found = AXE.run(page).response["violations"]
    return [
        f"{page.url}: {v['id']} ({v['impact']}: {v['help']}) at "
        + "; ".join(" ".join(node["target"]) for node in v["nodes"][:5])
        + (f" and {len(v['nodes']) - 5} more" if len(v["nodes"]) > 5 else "")
        for v in found
        if v["impact"] in SERIOUS
    ]


def test_no_page_has_a_serious_or_critical_accessibility_violation(
    server: str, site: Site, browser: Browser
):
    found: list[str] = []

    def check(page: Page) -> None:
        found.extend(serious_violations(page))

    # Signed out: the sign-in page, and the page of a user name locked out by failed tries.
    anonymous = tab(browser)
    settle(anonymous, server + "/accounts/login/")
    check(anonymous)
    anonymous.fill("#id_username", "olga")
    anonymous.fill("#id_password", "wrong")
    anonymous.click("button:has-text('Sign in')")
    assert anonymous.locator("h1").inner_text() == "Too many failed sign-ins"
    check(anonymous)

    admin = tab(browser)
    sign_in(admin, server, site.admin)
    seen = set()
    for path in site.pages:
        settle(admin, server + path)
        assert admin.evaluate("document.contentType") == "text/html", path
        if admin.url not in seen:  # a plan's edit page sends a plan past its draft to its page
            seen.add(admin.url)
            check(admin)

    # A page that does not exist, a parameter ignored with a message, a form refused (400).
    settle(admin, server + "/no-such-page/", status=404)
    check(admin)
    settle(admin, server + reverse("fleet:clusters") + "?q=%01")
    assert admin.locator("ul.messages li").count() == 1
    check(admin)
    settle(admin, server + reverse("rollout:emergency_stop"))
    admin.eval_on_selector("#stop-reason", "(area) => { area.value = 'stop\\u0001'; }")
    admin.click("button:has-text('Stop every plan now')")
    assert admin.locator("h1").inner_text() == "Not accepted"
    check(admin)

    # An emergency stop in force: its banner on every page, and the page that lifts it.
    settle(admin, server + reverse("rollout:emergency_stop"))
    admin.fill("#stop-reason", "a bad node image in westeurope")
    admin.click("button:has-text('Stop every plan now')")
    admin.wait_for_function(HTMX_IDLE)
    assert admin.locator("[data-testid=emergency-banner]").count() == 1
    check(admin)
    for name in ["rollout:emergency_lift", "rollout:emergency_stop", "fleet:overview"]:
        settle(admin, server + reverse(name))
        check(admin)

    # A role refused a page.
    viewer = tab(browser)
    sign_in(viewer, server, site.viewer)
    settle(viewer, server + reverse("rollout:plan_new"), status=403)
    assert viewer.locator("h1").inner_text() == "Not allowed"
    check(viewer)

    assert len(seen) >= 20, seen  # the pages of ACCESS, each plan's and each wave's
    assert not found, f"{len(found)} serious or critical violations:\n" + "\n".join(found)


# Mark every control a keyboard user should reach; swaps by htmx polling would replace them.
MARK_CONTROLS = """() => {
  document.body.addEventListener("htmx:beforeSwap", (event) => { event.detail.shouldSwap = false; });
  const selector = "a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]";
  const shown = (el) => el.getClientRects().length > 0
    && getComputedStyle(el).visibility !== "hidden" && !el.disabled
    && el.getAttribute("tabindex") !== "-1";
  const controls = [...document.querySelectorAll(selector)].filter(shown);
  controls.forEach((el, i) => {
    // A radio group is one stop of the Tab key; the arrows move within it.
    el.dataset.kb = el.type === "radio" ? "radio " + el.name : String(i);
  });
  return [...new Set(controls.map((el) => el.dataset.kb))];
}"""
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const ring = (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0)
    || style.boxShadow !== "none";
  return {
    key: el.dataset.kb || null,
    what: el.outerHTML.slice(0, 120),
    visible: ring && el.matches(":focus-visible"),
  };
}"""
DESCRIBE = """(keys) => keys.map((key) => {
  const el = document.querySelector(`[data-kb="${key}"]`);
  return el ? el.outerHTML.slice(0, 120) : key;
})"""


def tab_through(page: Page) -> tuple[list[str], list[str]]:
    """Press Tab until focus has been everywhere it goes; the controls it never reached, and
    those it reached without a visible focus ring."""
    controls: list[str] = page.evaluate(MARK_CONTROLS)
    reached: set[str] = set()
    unringed: list[str] = []
    first = None
    for _ in range(len(controls) + 20):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused is None:
            continue
        key = focused["key"] or focused["what"]
        if key == first:
            break
        first = first or key
        reached.add(key)
        if not focused["visible"]:
            unringed.append(focused["what"])
        if reached.issuperset(controls):
            break
    missed = page.evaluate(DESCRIBE, [c for c in controls if c not in reached])
    return missed, unringed


def test_every_control_of_the_main_pages_takes_focus_from_the_keyboard_and_shows_it(
    server: str, site: Site, browser: Browser
):
    missed: dict[str, list[str]] = {}
    unringed: dict[str, list[str]] = {}
    anonymous = tab(browser)
    settle(anonymous, server + "/accounts/login/")
    missed["sign in"], unringed["sign in"] = tab_through(anonymous)
    admin = tab(browser)
    sign_in(admin, server, site.admin)
    for name, path in site.main.items():
        settle(admin, server + path)
        missed[name], unringed[name] = tab_through(admin)

    assert not {k: v for k, v in missed.items() if v}, "controls Tab never reached"
    assert not {k: v for k, v in unringed.items() if v}, "focus without a visible ring"


LAYOUT = """() => {
  const rect = (el) => el.getBoundingClientRect();
  const overlap = (a, b) => a.left < b.right - 1 && b.left < a.right - 1
    && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const overlapping = (row) => {
    const parts = [...row.children].filter((el) => el.getClientRects().length).map(rect);
    return parts.some((a, i) => parts.some((b, j) => i < j && overlap(a, b)));
  };
  const rows = ".topbar, .heading-row, .pager, form.filters, .decide";
  const crowded = [...document.querySelectorAll(rows)].filter(overlapping)
    .map((row) => row.outerHTML.slice(0, 80));
  const bar = [...document.querySelectorAll(".topbar > *")].map(rect);
  // What sticks out of its card sideways, but for what a scrolling box inside it holds.
  const spilling = [];
  for (const card of document.querySelectorAll("main .card")) {
    const box = rect(card);
    for (const el of card.querySelectorAll("*")) {
      let up = el.parentElement;
      while (up !== card && getComputedStyle(up).overflowX === "visible") up = up.parentElement;
      const r = rect(el);
      if (up === card && r.width && (r.right > box.right + 1 || r.left < box.left - 1)) {
        spilling.push(el.outerHTML.slice(0, 80));
      }
    }
  }
  const heads = [...document.querySelectorAll("table.data thead th")];
  const wide = [...document.querySelectorAll("main *")]
    .filter((el) => rect(el).right > innerWidth + 1)
    .slice(0, 5).map((el) => el.outerHTML.slice(0, 100));
  return {
    scrollWidth: document.scrollingElement.scrollWidth,
    innerWidth,
    mainWidth: rect(document.querySelector("main")).width,
    barRows: new Set(bar.map((r) => Math.round(r.top + r.height / 2))).size,
    crowded,
    spilling: spilling.slice(0, 5),
    tables: heads.length,
    notSticky: heads.filter((th) => getComputedStyle(th).position !== "sticky").length,
    wide,
  };
}"""


def test_the_pages_use_the_whole_width_and_keep_table_headers_in_view(
    server: str, site: Site, browser: Browser
):
    problems = []
    for width, height in [(1280, 800), (1920, 1080)]:
        page = tab(browser, width, height)
        sign_in(page, server, site.admin)
        problems += layout_problems(page, server, site, width)

    assert not problems, "\n".join(problems)


def layout_problems(page: Page, server: str, site: Site, width: int) -> list[str]:
    problems = []
    for main, path in site.main.items():
        name = f"{main} at {width} px"
        settle(page, server + path)
        seen = page.evaluate(LAYOUT)
        if seen["scrollWidth"] > seen["innerWidth"]:
            problems.append(f"{name}: {seen['scrollWidth']} px wide, e.g. {seen['wide']}")
        if seen["mainWidth"] < width - 100:
            problems.append(f"{name}: main is {seen['mainWidth']:.0f} px of {width}")
        if seen["barRows"] != 1:
            problems.append(f"{name}: the top bar wraps onto {seen['barRows']} rows")
        if seen["spilling"]:
            problems.append(f"{name}: out of its card: {seen['spilling']}")
        if seen["crowded"]:
            problems.append(f"{name}: controls overlap in {seen['crowded']}")
        if seen["notSticky"]:
            problems.append(f"{name}: {seen['notSticky']} of {seen['tables']} headers not sticky")
    return problems
