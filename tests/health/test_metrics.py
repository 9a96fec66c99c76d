"""/metrics: Prometheus' text format, with the database's state as the database holds it, the
processes' counts (Azure requests, Celery tasks, web requests), and a bearer token when one is
set. The example dashboard and alert rules in docs/ name only what it exposes. And for real:
two gunicorn web processes and a Celery worker running a wave against aksim add up their counts
in one PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from django.db import connection, transaction
from django.utils import timezone
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

import audit
from audit.anchor import make_checkpoint
from audit.verification import check_increment
from fleet.choices import SyncStatus, SyncTrigger
from fleet.models import Cluster
from fleet.sync import run_sync
from health import metrics as health_metrics
from health.tasks import record_heartbeat
from preflight.tasks import scan_cluster
from rollout import actions
from rollout.choices import PlanStatus, TargetStatus, WaveStatus
from rollout.models import RolloutPlan, RolloutTarget, Wave
from tests.aksim.builders import eligible_clean
from tests.conftest import start_beat, start_worker, tasks_sent_to
from tests.factories import (
    make_cluster,
    make_scan,
    make_sync_run,
    make_user,
    submitted_plan,
)
from tests.processes import BIN, ROOT, Process, free_port, wait_until

DOCS = ROOT / "docs"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client, **headers) -> Samples:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return parse(response.content.decode())


def by(samples: Samples, name: str, label: str, **only: str) -> dict[str, float]:
    """The samples of `name` by the value of `label` (those with `only`'s labels)."""
    found: dict[str, float] = {}
    for (sample, labels), value in samples.items():
        as_dict = dict(labels)
        if sample == name and all(as_dict.get(k) == v for k, v in only.items()):
            found[as_dict[label]] = found.get(as_dict[label], 0) + value
    return found


def total(samples: Samples, name: str, **only: str) -> float:
    return sum(
        value
        for (sample, labels), value in samples.items()
        if sample == name and all(dict(labels).get(k) == v for k, v in only.items())
    )


def nonzero(counts: dict[str, float]) -> dict[str, float]:
    return {key: value for key, value in counts.items() if value}


# --- the database's state -----------------------------------------------------------------------
@pytest.mark.django_db
def test_it_speaks_prometheus_and_counts_what_the_database_holds(client):
    operator = make_user("operator", username="olga")
    clean = [make_cluster(name=f"aks-clean-{n}") for n in range(3)]
    for cluster in clean:
        make_scan(cluster)
    make_scan(make_cluster(name="aks-rules"), status="blocked")
    make_cluster(name="aks-old", kubernetes_version="1.29.4")  # ineligible, never scanned
    make_cluster(name="aks-done", acceleration_mode="BpfVeth")
    make_cluster(name="aks-gone", removed_at=timezone.now())  # not in the inventory any more
    make_scan(make_cluster(name="aks-scanning"), status="running")
    submitted_plan(
        operator, name="canary", wave_spec="1, 100%", selection={"names": ["aks-clean-*"]}
    )
    make_sync_run(status=SyncStatus.FAILED, error="Azure said no")

    samples = scrape(client)

    present = Cluster.objects.filter(removed_at__isnull=True)
    assert by(samples, "wavegate_clusters_by_eligibility", "eligible") == {
        "true": present.filter(eligible=True).count(),
        "false": present.filter(eligible=False).count(),
    }
    assert by(samples, "wavegate_clusters_by_eligibility", "eligible")["false"] == 1
    assert nonzero(by(samples, "wavegate_clusters_by_preflight", "verdict")) == {
        "clean": 3,
        "blocked": 1,
        "none": 3,  # aks-old, aks-done and aks-scanning, whose scan has not finished
    }
    assert by(samples, "wavegate_clusters_by_acceleration_mode", "mode") == {
        "None": 6,
        "BpfVeth": 1,
    }

    for name, model, states in (
        ("wavegate_plans", RolloutPlan, PlanStatus),
        ("wavegate_waves", Wave, WaveStatus),
        ("wavegate_targets", RolloutTarget, TargetStatus),
    ):
        in_database = Counter(model.objects.values_list("status", flat=True))
        assert by(samples, name, "state") == {s: in_database.get(s, 0) for s in states.values}
    assert by(samples, "wavegate_plans", "state")["submitted"] == 1
    assert nonzero(by(samples, "wavegate_waves", "state")) == {"awaiting_approval": 1, "pending": 1}
    assert nonzero(by(samples, "wavegate_targets", "state")) == {"pending": 3}
    assert by(samples, "wavegate_scans_in_flight", "status") == {"queued": 0, "running": 1}
    assert total(samples, "wavegate_rollout_steps_queued") == 0
    assert total(samples, "wavegate_targets_past_deadline") == 0
    assert by(samples, "wavegate_sync_last_status", "status") == {
        "running": 0,
        "succeeded": 0,
        "failed": 1,
    }
    assert 250 < total(samples, "wavegate_sync_last_age_seconds") < 400  # started 5 minutes ago
    assert total(samples, "wavegate_database_up") == 1


@pytest.mark.django_db
def test_a_sync_that_never_succeeded_is_infinitely_old(client):
    fresh = scrape(client)
    assert total(fresh, "wavegate_sync_last_age_seconds") == math.inf  # none ever started
    assert total(fresh, "wavegate_sync_last_success_age_seconds") == math.inf

    make_sync_run(status=SyncStatus.FAILED, error="Azure said no")
    failed = scrape(client)
    assert 250 < total(failed, "wavegate_sync_last_age_seconds") < 400
    assert total(failed, "wavegate_sync_last_success_age_seconds") == math.inf


@pytest.mark.django_db
def test_the_database_half_still_answers_when_the_process_counts_are_gone(
    client, monkeypatch, tmp_path
):
    monkeypatch.setattr(health_metrics, "MULTIPROCESS_DIR", str(tmp_path / "removed"))
    make_cluster(name="aks-one")

    samples = scrape(client)

    assert total(samples, "wavegate_process_counts_up") == 0
    assert total(samples, "wavegate_database_up") == 1
    assert by(samples, "wavegate_clusters_by_eligibility", "eligible")["true"] == 1

    monkeypatch.setattr(health_metrics, "MULTIPROCESS_DIR", str(tmp_path))
    assert total(scrape(client), "wavegate_process_counts_up") == 1


@pytest.mark.django_db
def test_a_cluster_in_flight_past_its_deadline_is_counted(client, settings):
    operator = make_user("operator", username="olga")
    for n in range(3):
        make_cluster(name=f"aks-{n}")
    plan = submitted_plan(operator, name="stuck", wave_spec="100%")
    changing, verifying, fresh = plan.targets.order_by("position")
    long_ago = timezone.now() - datetime.timedelta(
        minutes=settings.WAVEGATE_DEADLINE_CHANGE_MINUTES + 1
    )
    RolloutTarget.objects.filter(pk=changing.pk).update(status="enabling", status_since=long_ago)
    # Verifying has a shorter deadline: the same age is within the change's, past its own.
    RolloutTarget.objects.filter(pk=verifying.pk).update(
        status="verifying",
        status_since=timezone.now()
        - datetime.timedelta(minutes=settings.WAVEGATE_DEADLINE_VERIFY_MINUTES + 1),
    )
    RolloutTarget.objects.filter(pk=fresh.pk).update(status="enabling", status_since=timezone.now())

    assert total(scrape(client), "wavegate_targets_past_deadline") == 2


def test_the_audit_chain_shows_as_beats_check_found_it(isolated_db, client, tmp_path, settings):
    key = tmp_path / "audit.key"
    key.write_bytes(os.urandom(48).hex().encode())
    settings.WAVEGATE_AUDIT_HMAC_KEY_FILE = str(key)
    settings.WAVEGATE_AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")
    before = scrape(client)
    assert total(before, "wavegate_audit_chain_broken") == 0
    # Never checked, never anchored: infinitely old, so that "older than" alerts fire.
    assert before[("wavegate_audit_last_checkpoint_age_seconds", frozenset())] == math.inf
    assert before[("wavegate_audit_chain_checked_age_seconds", frozenset())] == math.inf

    with transaction.atomic():
        events = [audit.record("test.event", object_id=str(n)) for n in range(3)]
    make_checkpoint()
    check_increment()
    intact = scrape(client)
    assert total(intact, "wavegate_audit_chain_broken") == 0
    assert total(intact, "wavegate_audit_checkpoints_unchecked") == 0
    assert 0 <= total(intact, "wavegate_audit_last_checkpoint_age_seconds") < 30
    assert 0 <= total(intact, "wavegate_audit_chain_checked_age_seconds") < 30

    with connection.cursor() as cursor:  # the owner's rights, which the app's role never has
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute("DELETE FROM audit_auditevent WHERE seq = %s", [events[-1].seq])
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
    check_increment()

    assert total(scrape(client), "wavegate_audit_chain_broken") == 1


# --- what the processes count ---------------------------------------------------------------
@pytest.mark.django_db
def test_a_syncs_azure_requests_are_counted_by_kind_and_status(client, wavegate_on_aksim):
    # Azure answers some requests 500/503: the SDK sends those again, at most 3 times a call.
    # 1 in 20, so that 4 in a row on one read (which fails the sync) stays rare (6e-6 a read);
    # syncs again until one was injected (none in a sync's ~100 calls: ~0.6%).
    wavegate_on_aksim.admin("PUT", "faults", {"errorRate": 0.05})
    before = scrape(client)

    calls: Counter[str] = Counter()  # what the syncs' own gateways counted
    unread = 0
    for _ in range(5):
        run = run_sync(SyncTrigger.COMMAND)
        assert run.status == SyncStatus.SUCCEEDED, run.error
        calls.update(run.counts["calls"])
        unread += run.counts["policies_unread"]
        if calls["server_errors"]:
            break

    after = scrape(client)

    def grew(name: str, **only: str) -> float:
        return total(after, name, **only) - total(before, name, **only)

    for kind in ("graph", "reads", "writes"):
        assert grew("wavegate_azure_requests_total", kind=kind) == calls.get(kind, 0), kind
    statuses = by(after, "wavegate_azure_requests_total", "status")
    server_errors = sum(
        n - by(before, "wavegate_azure_requests_total", "status").get(status, 0)
        for status, n in statuses.items()
        if status.startswith("5")
    )
    injected = wavegate_on_aksim.admin("GET", "stats")["injected_errors"]
    assert server_errors == calls["server_errors"] == injected > 0
    assert grew("wavegate_azure_throttled_total") == calls.get("throttled", 0)
    # Each error is sent again, unless it was the fourth in a row on one call: the SDK gives
    # up after 3 retries on a status, and a node disruption policy read that ends so is left
    # unread (the sync still succeeds; every other read failing would fail it).
    retries = grew("wavegate_azure_retries_total")
    assert server_errors - unread <= retries
    assert retries <= server_errors + calls.get("throttled", 0)
    assert grew("wavegate_azure_request_duration_seconds_count") == sum(
        calls.get(kind, 0) for kind in ("graph", "reads", "writes")
    )


@pytest.mark.django_db
def test_web_requests_and_celery_tasks_are_counted(client):
    before = scrape(client)
    for _ in range(3):
        assert client.get("/accounts/login/").status_code == 200
    client.get("/api/v1/plans/")  # no token: refused
    record_heartbeat.apply()
    scan_cluster.apply(args=["not-a-scan-id"])  # raises in the task

    after = scrape(client)

    def grew(name: str, **only: str) -> float:
        return total(after, name, **only) - total(before, name, **only)

    assert grew("wavegate_http_requests_total", kind="page", method="GET", status="200") == 3
    assert grew("wavegate_http_requests_total", kind="api", method="GET") == 1
    assert grew("wavegate_http_requests_total", kind="health") == 1  # the first scrape
    assert grew("wavegate_http_request_duration_seconds_count", kind="page") == 3
    task = "health.record_heartbeat"
    assert grew("wavegate_celery_task_duration_seconds_count", task=task) == 1
    assert grew("wavegate_celery_task_failures_total", task=task) == 0
    assert grew("wavegate_celery_task_failures_total", task="fleet.scan_cluster") == 1


# --- the token ----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_it_asks_for_the_bearer_token_when_one_is_set(client, settings):
    assert client.get("/metrics").status_code == 200  # empty setting: open

    settings.WAVEGATE_METRICS_TOKEN = "scrape-secret-1"
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": "Basic x"}):
        refused = client.get("/metrics", **headers)
        assert refused.status_code == 401
        assert refused["Content-Type"].startswith("text/plain")
        assert refused["WWW-Authenticate"].startswith("Bearer")
        assert b"WAVEGATE_METRICS_TOKEN" in refused.content
        assert b"wavegate_" not in refused.content

    samples = scrape(client, HTTP_AUTHORIZATION="Bearer scrape-secret-1")
    assert total(samples, "wavegate_database_up") == 1


# --- the dashboard and the alert rules ---------------------------------------------------------
def exposed_names(samples_text: str) -> set[str]:
    """Every series name /metrics exposes, those of families with no samples yet included."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    names = set()
    for family in text_string_to_metric_families(samples_text):
        names |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
        names |= {sample.name for sample in family.samples}
    return names


def names_in(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in re.findall(r"\bwavegate_[a-z0-9_]+", expr)}


@pytest.mark.django_db
def test_the_dashboard_and_the_alert_rules_name_only_what_metrics_exposes(
    client, tmp_path, settings
):
    # Every family present: a sync, a checked and anchored chain.
    make_sync_run()
    key = tmp_path / "audit.key"
    key.write_bytes(os.urandom(48).hex().encode())
    settings.WAVEGATE_AUDIT_HMAC_KEY_FILE = str(key)
    settings.WAVEGATE_AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")
    with transaction.atomic():
        audit.record("test.event")
    make_checkpoint()
    check_increment()
    exposed = exposed_names(client.get("/metrics").content.decode())

    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    assert dashboard["title"] == "Wavegate"
    assert dashboard["uid"]
    assert dashboard["schemaVersion"] >= 36
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["title"], panel
        assert panel["targets"], panel
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
    dashboard_exprs = [target["expr"] for panel in panels for target in panel["targets"]]

    rules = yaml.safe_load((DOCS / "prometheus-alerts.yml").read_text())
    alert_exprs = []
    for group in rules["groups"]:
        assert group["name"]
        assert group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert rule["alert"]
            assert rule["annotations"]["summary"]
            alert_exprs.append(str(rule["expr"]))
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {
        "WavegatePlanPaused",
        "WavegateAuditChainBroken",
        "WavegateClusterPastItsDeadline",
        "WavegateSyncFailing",
    } <= alerts

    used = names_in(dashboard_exprs) | names_in(alert_exprs)
    assert used - exposed == set()
    assert len(used) > 15


# --- for real: web, worker, aksim ---------------------------------------------------------------
def serve_metrics(database_url: str, tmp_path: Path, env: dict[str, str]) -> tuple[Process, str]:
    """gunicorn with the project's config (its child_exit hook), two worker processes."""
    port = free_port()
    argv = [str(BIN / "gunicorn"), "--config", "python:config.gunicorn", "config.wsgi:application"]
    argv += ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--no-control-socket"]
    process = Process(
        "gunicorn",
        argv,
        dict(
            os.environ,
            DATABASE_URL=database_url,
            WAVEGATE_VAR_DIR=str(tmp_path / "var"),
            DJANGO_SECRET_KEY="metrics-test-" + "k" * 40,
            **env,
        ),
        tmp_path / "gunicorn.log",
    ).start()
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if not process.running():
            return True
        try:
            urllib.request.urlopen(base + "/healthz", timeout=5).close()
        except urllib.error.HTTPError:
            return True  # 503 until a worker's heartbeat: it answers
        except OSError:
            return False
        return True

    wait_until(answers, 30, "gunicorn to answer", interval=0.2)
    assert process.running(), process.log()
    return process, base


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_web_and_worker_processes_add_up_while_a_wave_runs(
    isolated_db, wavegate_on_aksim, tmp_path
):
    started = time.monotonic()
    aksim = wavegate_on_aksim
    assert run_sync(SyncTrigger.COMMAND).status == "succeeded"
    chosen = sorted(s.name for s in aksim.fleet.clusters if eligible_clean(s) and not s.private)[:4]
    shared = tmp_path / "prometheus"
    env = {
        **aksim.wavegate_env(),
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
        "WAVEGATE_SCAN_POLL_SECONDS": "0.05",
        "WAVEGATE_SCAN_DEADLINE_SECONDS": "20",
        "WAVEGATE_ENGINE_TICK_SECONDS": "0.5",
        "LOG_LEVEL": "WARNING",
    }
    worker = start_worker(
        isolated_db.url, tmp_path / "worker.log", env, "--pool", "prefork", "--concurrency", "2"
    )
    beat = start_beat(isolated_db.url, worker, tmp_path, env)
    web, base = serve_metrics(isolated_db.url, tmp_path, {**env, "CELERY_QUEUE": worker.queue})
    operator = make_user("operator", username="olga")
    approver = make_user("approver", username="arun")
    compared_while_running = 0
    try:
        # Requests at once, so that both web processes answer some.
        with ThreadPoolExecutor(8) as pool:
            pages = list(pool.map(lambda _: fetch(base + "/accounts/login/"), range(16)))
        assert len(pages) == 16
        with tasks_sent_to(worker):
            plan = submitted_plan(
                operator,
                name="metrics",
                wave_spec="100%",
                concurrency=1,  # one cluster at a time: the wave runs a while
                soak_minutes=0,
                failure_budget="100%",
                respect_maintenance_windows=False,
                selection={"names": chosen},
            )
            actions.approve_wave(plan.waves.get(), acting_user=approver, comment="ok")
            while True:
                plan.refresh_from_db()
                if plan.status not in (PlanStatus.SUBMITTED, PlanStatus.RUNNING):
                    break
                assert time.monotonic() - started < 75, worker.process.log()[-3000:]
                states = Counter(plan.targets.values_list("status", flat=True))
                running = plan.waves.filter(status=WaveStatus.RUNNING).exists()
                samples = parse(fetch(base + "/metrics"))
                if running and states == Counter(plan.targets.values_list("status", flat=True)):
                    # The database did not move during the scrape: /metrics said what it holds.
                    assert nonzero(by(samples, "wavegate_targets", "state")) == states
                    compared_while_running += 1
                time.sleep(0.2)
        samples = parse(fetch(base + "/metrics"))
    finally:
        beat.stop()
        worker.process.stop()
        web.stop()

    assert plan.status == PlanStatus.COMPLETED, plan.paused_reason
    assert compared_while_running >= 1
    in_database = Counter(RolloutTarget.objects.values_list("status", flat=True))
    assert nonzero(by(samples, "wavegate_targets", "state")) == in_database == {"enabled": 4}

    # The web processes' requests, added up: every page request counted once, by either.
    assert total(samples, "wavegate_http_requests_total", kind="page", status="200") == 16
    answered_by = [
        n
        for path in shared.glob("counter_*.db")
        if (n := total(parse_files([path]), "wavegate_http_requests_total", kind="page"))
    ]
    assert len(answered_by) == 2, answered_by  # both web processes
    # The worker's: its engine steps and their calls to Azure (only the worker calls Azure in
    # these processes: the test's own sync ran without the shared directory).
    steps = total(
        samples, "wavegate_celery_task_duration_seconds_count", task="rollout.advance_target"
    )
    assert steps >= len(chosen)
    assert total(samples, "wavegate_azure_requests_total", kind="writes") >= len(chosen)
    assert total(samples, "wavegate_azure_requests_total", kind="reads") > 0
    accepted = aksim.admin("GET", "puts")["accepted"]
    assert len(accepted) == len(chosen)


def parse_files(paths: list[Path]) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in MultiProcessCollector.merge([str(p) for p in paths])
        for sample in family.samples
    }
