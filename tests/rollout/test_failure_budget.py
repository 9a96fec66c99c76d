"""With three clusters whose operations fail (each twice: Wavegate sends a failed change once
more by itself), a wave pauses at its failure budget and says why;
resuming is refused until the failures are dealt with; retry, skip and roll back then work, roll
back returns clusters to None in aksim, and the plan runs to its end."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from audit.models import AuditEvent
from audit.verification import verify_stored_chain
from rollout import actions
from rollout.choices import TARGET_IN_FLIGHT, PlanStatus, TargetStatus, WaveStatus
from rollout.models import RolloutPlan, RolloutTarget
from tests.aksim_server import Aksim, clean_fleet, start_aksim
from tests.factories import submitted_plan
from tests.rollout.stepping import run_tick

pytestmark = pytest.mark.django_db
CLUSTERS = 20
T = TargetStatus


@pytest.fixture(scope="module")
def aksim_server(tmp_path_factory) -> Iterator[Aksim]:
    server = start_aksim(tmp_path_factory.mktemp("aksim-budget"), clean_fleet(CLUSTERS, 2, 21))
    try:
        yield server
    finally:
        server.process.stop()


def tick_until(condition, what: str, ticks: int = 1200) -> None:
    for _ in range(ticks):
        run_tick()
        if condition():
            return
    raise AssertionError(f"never {what}")


def modes(aksim: Aksim) -> dict[str, str]:
    return {c.name: aksim.truth(c)["accelerationMode"] for c in aksim.fleet.clusters}


def puts(aksim: Aksim) -> list[dict]:
    return aksim.admin("GET", "puts")["accepted"]


def test_a_wave_pauses_at_its_budget_and_the_failures_are_retried_skipped_rolled_back(
    fleet, personas, webhook, eager, django_capture_on_commit_callbacks
):
    operator, approver = personas["operator"], personas["approver"]
    with django_capture_on_commit_callbacks(execute=True):
        plan = submitted_plan(
            operator,
            name="budgeted",
            wave_spec="100%",
            concurrency=3,
            failure_budget="10%",  # 2 of 20
            soak_minutes=0,
            respect_maintenance_windows=False,
        )
    wave = plan.waves.get()
    assert wave.targets.count() == CLUSTERS
    doomed = [t.cluster.name for t in wave.targets.order_by("position").select_related("cluster")]
    for spec in fleet.fleet.clusters:
        if spec.name in doomed[2:5]:  # the operation and its one re-send both fail
            fleet.admin("POST", f"clusters/{spec.key}/change", {"failOperations": 2})
    run_tick()
    actions.approve_wave(wave, acting_user=approver, comment="go")

    def paused() -> bool:
        plan.refresh_from_db()
        return plan.status == PlanStatus.PAUSED

    with django_capture_on_commit_callbacks(execute=True):
        tick_until(paused, "paused")
    # Whoever watches the webhook heard of both moments that need a person.
    told = webhook.bodies()
    assert [(b["kind"], b["wave"]) for b in told] == [
        ("wave_awaiting_approval", 1),
        ("plan_paused", 1),
    ]
    assert told[1]["reason"] == plan.paused_reason
    assert plan.paused_reason.startswith(
        "Wave 1: 3 failed of its 20 clusters, over the failure budget of 10% (2 allowed)."
    )
    assert "Retry, skip or roll back the failed clusters, then resume." in plan.paused_reason
    wave.refresh_from_db()
    assert wave.status == WaveStatus.PAUSED
    # Nothing new starts while paused: clusters in flight finish, the rest wait.
    tick_until(lambda: not plan.targets.filter(status__in=TARGET_IN_FLIGHT).exists(), "idle")
    for _ in range(5):
        run_tick()
    counts = Counter(plan.targets.values_list("status", flat=True))
    assert counts[T.FAILED] == 3
    assert counts[T.PENDING] > 0
    sent = puts(fleet)
    assert len(sent) == CLUSTERS - counts[T.PENDING] + 3  # each failed one was sent twice
    failed = list(plan.targets.filter(status=T.FAILED).select_related("cluster"))
    assert sorted(t.cluster.name for t in failed) == sorted(doomed[2:5])
    assert all(t.error_code == "ReconcileVMSSAgentPoolFailed" for t in failed)

    with pytest.raises(actions.ActionRefused, match="still has 3 failed clusters"):
        actions.resume_plan(plan, acting_user=operator)

    retried, skipped, rolled = failed
    enabled = plan.targets.filter(status=T.ENABLED).select_related("cluster").first()
    actions.retry_target(retried, acting_user=operator)
    actions.skip_target(skipped, acting_user=operator, reason="owner asked to wait")
    actions.roll_back_target(rolled, acting_user=operator, comment="failed half way")
    actions.roll_back_target(enabled, acting_user=operator, comment="latency regression")
    # Roll backs go on while the plan is paused.
    tick_until(lambda: not plan.targets.filter(status=T.ROLLING_BACK).exists(), "rolled back", 200)
    plan = actions.resume_plan(RolloutPlan.objects.get(pk=plan.pk), acting_user=operator)

    def completed() -> bool:
        plan.refresh_from_db()
        return plan.status == PlanStatus.COMPLETED

    tick_until(completed, "completed")

    final = {t.pk: t for t in RolloutTarget.objects.filter(plan=plan).select_related("cluster")}
    assert final[retried.pk].status == T.ENABLED
    assert final[retried.pk].attempts == 3  # sent, sent once more, retried
    assert final[skipped.pk].status == T.SKIPPED
    assert final[rolled.pk].status == final[enabled.pk].status == T.ROLLED_BACK
    now = modes(fleet)
    assert now[retried.cluster.name] == "BpfVeth"
    assert now[skipped.cluster.name] == "None"
    assert now[rolled.cluster.name] == now[enabled.cluster.name] == "None"
    others = [t for t in final.values() if t.pk not in (retried.pk, skipped.pk, rolled.pk)]
    assert all(now[t.cluster.name] == "BpfVeth" for t in others if t.pk != enabled.pk)
    # One PUT per cluster, a re-send per failed one, one for the retry, one None per roll
    # back: nothing else.
    assert len(puts(fleet)) == CLUSTERS + 3 + 1 + 2
    actions_seen = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "rollout.plan_paused",
        "rollout.target_retried",
        "rollout.target_skipped",
        "rollout.target_rollback_started",
        "rollout.plan_resumed",
        "rollout.plan_completed",
    } <= actions_seen
    assert verify_stored_chain().intact
