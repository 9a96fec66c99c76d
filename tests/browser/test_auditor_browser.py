"""An auditor's visit in a real browser (gunicorn, PostgreSQL): filter the log by a plan, read
an event's diff, download the CSV and the plan's evidence pack and check both as an outsider
would; find no control that changes anything, and see a forged change refused and recorded."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections, transaction
from playwright.sync_api import Page, expect, sync_playwright

import audit
from accounts.roles import Role
from audit.models import AuditEvent
from rollout.models import RolloutPlan
from tests.browser.app import CHROMIUM, CHROMIUM_ARGS, serve, sign_in
from tests.conftest import IsolatedDatabase
from tests.factories import PASSWORD, approved_plan, make_cluster, make_user
from tests.processes import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no Chromium at {CHROMIUM}: scripts/ensure_test_tools.sh installs Debian's",
    ),
]

FORGED_POST = """async (url) => {
    const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
    const token = cookie ? cookie.split("=")[1] : "";
    const body = new URLSearchParams({csrfmiddlewaretoken: token, comment: "x", reason: "x"});
    const response = await fetch(url, {method: "POST", body, credentials: "same-origin"});
    return response.status;
}"""


@pytest.fixture
def plan(isolated_db: IsolatedDatabase, settings) -> RolloutPlan:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    alpha = make_cluster(name="aks-alpha")
    make_cluster(name="aks-beta")
    make_user(Role.AUDITOR, username="audrey")
    carla = make_user(Role.OPERATOR, username="carla")
    arun = make_user(Role.APPROVER, username="arun")
    plan = approved_plan(carla, arun, name="canary-first", wave_spec="1, 100%")
    with transaction.atomic():
        audit.record(
            "cluster.changed",
            obj=alpha,
            before={"kubernetes_version": "1.32.5", "ring": "canary"},
            after={"kubernetes_version": "1.33.1", "ring": "canary"},
        )
    return plan


@pytest.fixture
def server(isolated_db: IsolatedDatabase, plan, tmp_path: Path) -> Iterator[str]:
    key = tmp_path / "audit.key"
    key.write_text("browser-test-audit-key-" + "9" * 40)
    with serve(
        isolated_db.url,
        tmp_path,
        WAVEGATE_AUDIT_HMAC_KEY_FILE=str(key),
        WAVEGATE_AUDIT_CHECKPOINT_FILE=str(tmp_path / "checkpoints.jsonl"),
    ) as base:
        yield base


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_context(accept_downloads=True).new_page()
            tab.set_default_timeout(15_000)
            yield tab
        finally:
            # The test reads the database while Playwright runs: those connections belong to
            # its context and would outlive this test's database, which is dropped next.
            connections.close_all()
            browser.close()


def no_state_changing_control(page: Page) -> None:
    """Only the sign-out form posts; every other form on the page only reads (GET)."""
    posting = page.locator("form[method=post], form[method=POST]")
    expect(posting).to_have_count(1)
    expect(posting.locator("button")).to_have_text("Sign out")


def test_an_auditor_filters_reads_exports_and_changes_nothing(
    server: str, plan: RolloutPlan, page: Page, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    sign_in(page, server, {"username": "audrey", "password": PASSWORD})

    # Filter the log by the plan: only its events, each linked to the plan.
    page.goto(server + "/audit/")
    page.fill("#id_plan", str(plan.pk))
    page.click("[data-testid=audit-filters] button:has-text('Filter')")
    rows = page.locator("[data-testid=audit-events] tbody tr")
    expected = AuditEvent.objects.filter(plan_id=plan.pk).count()
    expect(rows).to_have_count(expected)
    expect(rows.locator(f"a[href='/plans/{plan.pk}/']")).to_have_count(expected)
    no_state_changing_control(page)

    # Open the approval: who, from where, the diff field by field, and its proof.
    approval = AuditEvent.objects.get(plan_id=plan.pk, action="rollout.wave_approved")
    page.click(f"a[aria-label='Event {approval.seq}']")
    expect(page.locator("h1")).to_have_text(f"Audit event {approval.seq}")
    expect(page.locator("[data-testid=event-facts]")).to_contain_text("arun")
    expect(page.locator("[data-testid=event-diff]")).to_contain_text("comment")
    expect(page.locator("[data-testid=event-proof]")).to_contain_text(approval.hash)

    # A change of a cluster shows what changed and what did not.
    changed = AuditEvent.objects.get(action="cluster.changed", object_label="aks-alpha")
    page.goto(f"{server}/audit/events/{changed.seq}/")
    diff = page.locator("[data-testid=event-diff] tr.changed")
    expect(diff).to_have_count(1)
    expect(diff).to_contain_text("kubernetes_version")
    expect(diff).to_contain_text("1.33.1")

    # The CSV of the filtered log downloads, and the offline verifier accepts every row.
    page.goto(f"{server}/audit/?plan={plan.pk}")
    with page.expect_download() as download:
        page.click("[data-testid=export-csv]")
    exported = tmp_path / "plan.csv"
    download.value.save_as(exported)
    rows_in_csv = [
        r for r in csv.DictReader(io.StringIO(exported.read_text())) if r.get("record") == "event"
    ]
    assert len(rows_in_csv) == expected
    checked = subprocess.run(
        [sys.executable, "-m", "audit.verify_export", str(exported)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # The evidence pack: every file as its manifest says, the summary names every cluster and
    # approver.
    page.goto(f"{server}/plans/{plan.pk}/")
    no_state_changing_control(page)
    with page.expect_download() as download:
        page.click("[data-testid=evidence-pack]")
    pack = tmp_path / "evidence.zip"
    download.value.save_as(pack)
    with zipfile.ZipFile(pack) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        files = manifest["files"]
        assert set(files) == set(archive.namelist()) - {"manifest.json"}
        for name, entry in files.items():
            assert hashlib.sha256(archive.read(name)).hexdigest() == entry["sha256"], name
        summary = archive.read("summary.html").decode()
    for name in ("aks-alpha", "aks-beta", "arun", "canary-first"):
        assert name in summary

    # Nowhere a control that changes state: the fleet, a cluster, the plans, a wave.
    for path in ("/", "/clusters/", "/plans/", f"/plans/{plan.pk}/waves/1/"):
        page.goto(server + path)
        no_state_changing_control(page)

    # Posting a change by hand is refused by the server, and the refusal is recorded.
    wave = plan.waves.get(index=2)
    for url in (
        f"/plans/{plan.pk}/pause",
        f"/plans/{plan.pk}/waves/{wave.pk}/approve",
        "/sync/",
    ):
        assert page.evaluate(FORGED_POST, server + url) == 403, url
    refused = AuditEvent.objects.filter(actor_name="audrey", outcome="refused")
    assert refused.count() >= 3
    assert all(e.after and e.after.get("refusal") for e in refused)
