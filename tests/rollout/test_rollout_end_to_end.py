"""A plan over the 60-cluster test fleet, run by a real Celery worker and beat through Redis and
PostgreSQL against aksim: waves `1, 10%, 50%, 100%`, each approved by a second person, end with
every eligible clean cluster at BpfVeth in aksim, the blocked ones left out with reasons, and
every step in the audit log."""

from __future__ import annotations

import time

import pytest

from aksim.generate import _eligible
from audit.models import AuditEvent
from audit.verification import verify_stored_chain
from fleet.choices import SyncTrigger
from fleet.sync import run_sync
from rollout import actions
from rollout.choices import PlanStatus, TargetStatus, WaveStatus
from rollout.models import RolloutPlan
from tests.aksim.builders import eligible_clean
from tests.conftest import start_beat, start_worker, tasks_sent_to
from tests.factories import make_user, submitted_plan

TIMEOUT = 420


@pytest.mark.timeout(TIMEOUT + 120)
def test_a_plan_over_60_clusters_runs_wave_by_wave_to_bpfveth(
    isolated_db, wavegate_on_aksim, tmp_path
):
    aksim = wavegate_on_aksim
    assert run_sync(SyncTrigger.COMMAND).status == "succeeded"
    env = {
        **aksim.wavegate_env(),
        "WAVEGATE_SCAN_POLL_SECONDS": "0.05",
        "WAVEGATE_SCAN_DEADLINE_SECONDS": "20",
        "WAVEGATE_ENGINE_TICK_SECONDS": "0.5",
        "LOG_LEVEL": "WARNING",
    }
    worker = start_worker(
        isolated_db.url, tmp_path / "worker.log", env, "--pool", "threads", "--concurrency", "8"
    )
    beat = start_beat(isolated_db.url, worker, tmp_path, env)
    operator = make_user("operator", username="olga")
    approver = make_user("approver", username="arun")
    try:
        with tasks_sent_to(worker):
            plan = submitted_plan(
                operator,
                name="bpfveth-everywhere",
                wave_spec="1, 10%, 50%, 100%",
                concurrency=10,
                soak_minutes=0,
                # A cluster whose nodes raise iptables warnings once BpfVeth is on fails its
                # verification: it fails, with the reason, without pausing this plan (the
                # budget's pause is tested in test_failure_budget.py).
                failure_budget="100%",
                # The test fleet's windows are weekly: waiting for them is tested on its own
                # (test_engine_steps.py); here every cluster goes at once.
                respect_maintenance_windows=False,
            )
            deadline = time.monotonic() + TIMEOUT
            while True:
                plan.refresh_from_db()
                if plan.status not in (PlanStatus.SUBMITTED, PlanStatus.RUNNING):
                    break
                for wave in plan.waves.filter(status=WaveStatus.AWAITING_APPROVAL):
                    actions.approve_wave(
                        wave, acting_user=approver, comment=f"wave {wave.index} ok"
                    )
                assert time.monotonic() < deadline, (
                    f"plan still {plan.status}: "
                    f"{list(plan.waves.values_list('index', 'status'))} {plan.paused_reason}"
                    + worker.process.log()[-3000:]
                )
                time.sleep(0.5)
    finally:
        beat.stop()
        worker.process.stop()

    assert plan.status == PlanStatus.COMPLETED, (
        plan.paused_reason,
        list(
            plan.targets.filter(status="failed").values_list(
                "cluster__name", "error_code", "error_message"
            )
        ),
    )
    waves = list(plan.waves.values_list("status", flat=True))
    assert len(waves) >= 3
    assert waves == [WaveStatus.DONE] * len(waves)
    targets = list(plan.targets.select_related("cluster"))
    by_name = {t.cluster.name: t for t in targets}
    for spec in aksim.fleet.clusters:
        target = by_name.get(spec.name)
        if eligible_clean(spec) and not spec.private:
            assert target is not None, f"{spec.name} left out"
            assert aksim.truth(spec)["accelerationMode"] == "BpfVeth"
            if spec.warnings:  # its nodes raise AKS's iptables warnings once BpfVeth is on
                assert target.status == TargetStatus.FAILED, spec.name
                assert target.error_code == "IPTablesWarnings"
                assert all(node in target.error_message for node in spec.warnings)
            else:
                assert target.status == TargetStatus.ENABLED, (spec.name, target.error_message)
        elif target is not None and target.status == TargetStatus.BLOCKED:
            # In the plan but refused by its fresh preflight: left out with a reason.
            assert spec.user_rules
            assert "iptables" in target.error_message
        elif target is not None:
            # The node disruption policy: AKS allows the change inside the cluster's
            # aksManagedNodeOSUpgradeSchedule window, or at any time without one; otherwise
            # the plan leaves it out with the reason (it does not wait for windows).
            assert spec.node_disruption_policy == "AllowDuringMaintenanceWindow", spec.name
            assert target.status == TargetStatus.ENABLED, (spec.name, target.error_message)
    left_out = {e["name"]: e["reason"] for e in plan.excluded}
    assert all(left_out.values())
    for spec in aksim.fleet.clusters:
        if spec.node_disruption_policy == "Block" and _eligible(spec):
            assert "node disruption policy" in left_out[spec.name], spec.name
    accepted = aksim.admin("GET", "puts")["accepted"]
    changed = [
        t for t in targets if t.status == TargetStatus.ENABLED or t.error_code == "IPTablesWarnings"
    ]
    # Every eligible cluster changed exactly once: one accepted PUT each, its target's own.
    assert sorted(p["clientRequestId"] for p in accepted) == sorted(t.request_id for t in changed)
    assert {s.name for s in aksim.fleet.clusters if eligible_clean(s) and not s.private} <= {
        t.cluster.name for t in changed
    }
    refused = aksim.admin("GET", "puts")["refused"]
    assert {p["status"] for p in refused} <= {409, 412}  # AKS busy with its own operations
    actions_logged = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "rollout.plan_submitted",
        "rollout.wave_approved",
        "rollout.wave_started",
        "rollout.target_change_sent",
        "rollout.target_done",
        "rollout.plan_completed",
    } <= actions_logged
    assert AuditEvent.objects.filter(action="rollout.wave_approved").count() == len(waves)
    assert verify_stored_chain().intact
    assert RolloutPlan.objects.get(pk=plan.pk).claims.count() == 0
