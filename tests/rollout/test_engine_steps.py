"""The engine's step for one target, against aksim through the real SDK: fresh preflight, one
PUT per attempt with its own request id, the token kept, one status read per step, verify."""

from __future__ import annotations

import datetime
import time

import pytest

from aksim.fleetfile import Cluster as Spec
from aksim.generate import _eligible
from audit.models import AuditEvent
from fleet.models import Cluster
from rollout import actions, engine
from rollout.choices import Goal, TargetStatus
from rollout.models import RolloutTarget
from tests.aksim.builders import eligible_clean
from tests.aksim_server import Aksim
from tests.factories import lone_target, submitted_plan
from tests.rollout.stepping import run_until_settled

pytestmark = pytest.mark.django_db


def target_for(
    spec: Spec, personas, goal: str = Goal.BPFVETH, windows: bool = False
) -> RolloutTarget:
    return lone_target(
        personas["operator"], spec.name, goal=goal, respect_maintenance_windows=windows
    )


def accepted_puts(aksim: Aksim, spec: Spec) -> list[dict]:
    return [p for p in aksim.admin("GET", "puts")["accepted"] if p["clusterId"] == spec.arm_id]


def test_a_clean_cluster_goes_through_every_step_to_bpfveth_with_one_put(fleet, personas):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    target = target_for(spec, personas)

    seen = run_until_settled(target)

    assert seen == ["pending", "preflight", "ready", "enabling", "verifying", "enabled"]
    target.refresh_from_db()
    assert fleet.truth(spec)["accelerationMode"] == "BpfVeth"
    puts = accepted_puts(fleet, spec)
    assert [p["clientRequestId"] for p in puts] == [target.request_id]
    assert target.attempts == 1
    assert target.profile_before["accelerationMode"] == "None"
    assert target.profile_after["accelerationMode"] == "BpfVeth"
    assert Cluster.objects.get(pk=target.cluster_id).latest_scan.status == "clean"


def test_a_cluster_with_user_rules_is_blocked_by_its_fresh_preflight_and_never_changed(
    fleet, personas
):
    spec = fleet.one(
        lambda c: _eligible(c) and c.user_rules and c.acceleration_mode == "None"
        and c.power_state == "Running" and not c.private,
        "eligible cluster with user rules",
    )  # fmt: skip
    target = target_for(spec, personas)

    assert run_until_settled(target)[-1] == "blocked"

    target.refresh_from_db()
    assert "user-installed iptables rules block it" in target.error_message
    assert accepted_puts(fleet, spec) == []
    assert fleet.admin("GET", "puts")["refused"] == []


def test_a_failed_operation_is_sent_once_more_then_fails_with_azures_message(fleet, personas):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    fleet.admin("PUT", "faults", {"lroFailureRate": 1.0})
    target = target_for(spec, personas)

    assert run_until_settled(target)[-1] == "failed"

    # ARM kept the target: the cluster read BpfVeth in provisioning state Failed, so the same
    # change went once more; the second failure is final, with Azure's own code and message.
    target.refresh_from_db()
    assert target.error_code == "ReconcileVMSSAgentPoolFailed"
    assert "again, after Wavegate sent the change once more" in target.error_message
    assert "failed while reimaging nodes" in target.error_message
    assert len(accepted_puts(fleet, spec)) == 2


def test_a_failed_operation_that_succeeds_when_sent_again_enables_the_cluster(fleet, personas):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    fleet.admin("PUT", "faults", {"lroFailureRate": 1.0})
    target = target_for(spec, personas)
    seen = [target.status]
    while not (seen[-1] == "ready" and "enabling" in seen):  # the first operation failed
        seen.append(engine.advance(target.pk, go_on=False).status)
        assert seen[-1] != "failed", seen
        assert len(seen) < 400, seen
        time.sleep(0.02)
    fleet.admin("PUT", "faults", {"lroFailureRate": 0.0})

    assert run_until_settled(target)[-1] == "enabled"
    assert len(accepted_puts(fleet, spec)) == 2


def test_a_target_left_enabling_without_a_token_is_resolved_by_reading_the_cluster(fleet, personas):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    target = target_for(spec, personas)
    # As if the worker died after counting the attempt and before the PUT went out.
    RolloutTarget.objects.filter(pk=target.pk).update(
        status=TargetStatus.ENABLING, attempts=1, request_id=engine.request_id(target, 1)
    )
    target.refresh_from_db()

    seen = run_until_settled(target)

    assert seen[:3] == ["enabling", "ready", "enabling"]
    assert seen[-1] == "enabled"
    puts = accepted_puts(fleet, spec)
    assert [p["clientRequestId"] for p in puts] == [engine.request_id(target, 2)]


def test_a_rollback_target_skips_preflight_and_returns_the_cluster_to_none(fleet, personas):
    spec = fleet.one(
        lambda c: c.acceleration_mode == "BpfVeth" and c.power_state == "Running",
        "cluster at BpfVeth",
    )
    target = target_for(spec, personas, goal=Goal.NONE)

    seen = run_until_settled(target)

    assert seen == ["pending", "preflight", "ready", "enabling", "verifying", "enabled"]
    assert fleet.truth(spec)["accelerationMode"] == "None"
    assert not Cluster.objects.get(pk=target.cluster_id).scans.exists()


def test_an_operator_rolls_a_changed_cluster_back_to_none(fleet, personas):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    target = target_for(spec, personas)
    assert run_until_settled(target)[-1] == "enabled"

    target = actions.roll_back_target(
        target, acting_user=personas["operator"], comment="latency regression"
    )
    seen = run_until_settled(target)

    assert seen == ["rolling_back", "rolled_back"]
    assert fleet.truth(spec)["accelerationMode"] == "None"
    puts = accepted_puts(fleet, spec)
    assert [p["mode"] for p in puts] == ["BpfVeth", "None"]
    assert len({p["clientRequestId"] for p in puts}) == 2
    events = AuditEvent.objects.filter(action="rollout.target_rollback_started")
    assert [e.after["comment"] for e in events] == ["latency regression"]


def daily_window(start: datetime.datetime, hours: int) -> dict:
    return {
        "name": "aksManagedNodeOSUpgradeSchedule",
        "properties": {
            "maintenanceWindow": {
                "schedule": {"daily": {"intervalDays": 1}},
                "startTime": start.strftime("%H:%M"),
                "durationHours": hours,
                "utcOffset": "+00:00",
            }
        },
    }


def test_a_cluster_waits_for_its_maintenance_window_and_then_goes_on(fleet, personas):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    row = Cluster.objects.get(name=spec.name)
    now = datetime.datetime.now(datetime.UTC)
    row.maintenance_window = daily_window(now + datetime.timedelta(hours=3), 1)  # closed now
    row.save()
    target = target_for(spec, personas, windows=True)

    for _ in range(30):
        engine.advance(target.pk)
    target.refresh_from_db()

    assert target.status == TargetStatus.WAITING_FOR_WINDOW
    assert target.error_message.startswith("Waiting for its maintenance window: ")
    assert accepted_puts(fleet, spec) == []

    row.maintenance_window = daily_window(now - datetime.timedelta(minutes=30), 2)  # open now
    row.save()
    assert run_until_settled(target)[-1] == "enabled"
    assert len(accepted_puts(fleet, spec)) == 1


def test_windows_opening_together_start_no_more_clusters_than_the_concurrency(fleet, personas):
    first, second = fleet.clusters(eligible_clean)[:2]
    now = datetime.datetime.now(datetime.UTC)
    Cluster.objects.filter(name__in=(first.name, second.name)).update(
        maintenance_window=daily_window(now + datetime.timedelta(hours=3), 1)  # closed now
    )
    plan = submitted_plan(
        personas["operator"],
        name="windows",
        wave_spec="100%",
        concurrency=1,
        selection={"names": [first.name, second.name]},
    )
    one, two = plan.targets.order_by("position")
    RolloutTarget.objects.filter(plan=plan).update(status=TargetStatus.PREFLIGHT)
    for target in (one, two):  # both wait, and a cluster waiting takes no slot
        assert engine.advance(target.pk).status == TargetStatus.WAITING_FOR_WINDOW

    Cluster.objects.filter(name__in=(first.name, second.name)).update(
        maintenance_window=daily_window(now - datetime.timedelta(minutes=30), 2)  # open now
    )
    assert engine.advance(one.pk).status == TargetStatus.ENABLING
    assert engine.advance(two.pk).status == TargetStatus.WAITING_FOR_WINDOW
    two.refresh_from_db()
    assert "waiting for a free slot" in two.error_message

    assert run_until_settled(one)[-1] == "enabled"
    assert run_until_settled(two)[-1] == "enabled"
    assert [len(accepted_puts(fleet, spec)) for spec in (first, second)] == [1, 1]


def test_one_task_takes_a_cluster_as_far_as_it_goes_without_waiting(fleet, personas):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    target = target_for(spec, personas)

    # Preflight (scanned now), ready, PUT sent: then it waits for Azure's operation.
    assert engine.advance(target.pk).status == TargetStatus.ENABLING
    assert len(accepted_puts(fleet, spec)) == 1
    for _ in range(400):
        # Once the operation ends, the same task verifies the nodes too.
        if engine.advance(target.pk).status != TargetStatus.ENABLING:
            break
        time.sleep(0.02)
    target.refresh_from_db()
    assert target.status == TargetStatus.ENABLED
    assert len(accepted_puts(fleet, spec)) == 1


def test_after_the_put_nothing_reads_the_operation_behind_the_engines_back(fleet, personas):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    target = target_for(spec, personas)
    assert engine.advance(target.pk).status == TargetStatus.ENABLING
    reads = fleet.admin("GET", "stats").get("reads", 0)

    time.sleep(1.5)  # the SDK's own poller would read the operation every second or so

    assert fleet.admin("GET", "stats").get("reads", 0) == reads
