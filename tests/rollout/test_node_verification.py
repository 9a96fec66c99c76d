"""After Azure says a change succeeded, the engine reads the cluster's nodes through its
Kubernetes API (aksim's): Ready, labelled ebpf-host-routing, Cilium agents ready, no iptables
warnings since the change began. While a wave soaks, it keeps reading them and pauses the plan
on a node NotReady or a new warning; resuming acknowledges what was seen."""

from __future__ import annotations

import pytest

from aksim.fleetfile import Cluster as Spec
from audit.models import AuditEvent
from rollout import actions, engine
from rollout.choices import PlanStatus, TargetStatus, WaveStatus
from rollout.models import RolloutPlan
from tests.aksim.builders import eligible_clean
from tests.factories import lone_target, submitted_plan
from tests.rollout.stepping import run_tick, run_until_settled

pytestmark = pytest.mark.django_db


def linux_nodes(spec: Spec) -> list[str]:
    return [n.name for n in spec.nodes() if n.linux]


def change(aksim, spec: Spec, **what) -> None:
    aksim.admin("POST", f"clusters/{spec.key}/change", what)


def test_a_warning_after_the_change_fails_the_cluster_naming_node_and_reason(fleet, personas):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    node = linux_nodes(spec)[0]
    # AKS raises it once BpfVeth is on: something on this node keeps adding iptables rules.
    change(fleet, spec, warnings={node: ["BlockedIPTablesRule"]})
    target = lone_target(personas["operator"], spec.name)

    assert run_until_settled(target)[-1] == "failed"

    target.refresh_from_db()
    assert target.error_code == "IPTablesWarnings"
    assert f"warning BlockedIPTablesRule on {node}" in target.error_message
    assert fleet.truth(spec)["accelerationMode"] == "BpfVeth"  # Azure's part did succeed
    # The operator rolls it back; nodes without the label are what None asks for.
    target = actions.roll_back_target(target, acting_user=personas["operator"], comment="noisy")
    assert run_until_settled(target)[-1] == "rolled_back"
    assert fleet.truth(spec)["accelerationMode"] == "None"


def test_a_node_not_ready_holds_verification_until_it_returns(fleet, personas, settings):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    node = linux_nodes(spec)[-1]
    target = lone_target(personas["operator"], spec.name)
    for _ in range(200):
        if engine.advance(target.pk).status == TargetStatus.ENABLING:
            break
    change(fleet, spec, notReady=[node])  # it does not come back from its reimage
    for _ in range(200):
        if engine.advance(target.pk).status == TargetStatus.VERIFYING:
            break
    for _ in range(3):
        engine.advance(target.pk)
    target.refresh_from_db()
    assert target.status == TargetStatus.VERIFYING
    assert f"node(s) NotReady: {node}" in target.error_message
    assert f"without a ready Cilium agent: {node}" in target.error_message

    change(fleet, spec, notReady=[])
    assert run_until_settled(target)[-1] == "enabled"
    target.refresh_from_db()
    assert target.error_message == ""


def test_nodes_that_never_settle_fail_the_cluster_after_the_limit(fleet, personas, settings):
    settings.WAVEGATE_VERIFY_NODES_MINUTES = 0.001
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    node = linux_nodes(spec)[0]
    target = lone_target(personas["operator"], spec.name)
    for _ in range(200):
        if engine.advance(target.pk).status == TargetStatus.ENABLING:
            break
    change(fleet, spec, notReady=[node])

    assert run_until_settled(target)[-1] == "failed"

    target.refresh_from_db()
    assert target.error_code == "NodesNotSettled"
    assert node in target.error_message


def test_the_soak_watch_pauses_on_a_node_not_ready_and_a_new_warning(
    fleet, personas, settings, eager
):
    settings.WAVEGATE_SOAK_CHECK_SECONDS = 0
    first, second = fleet.clusters(eligible_clean)[:2]
    operator, approver = personas["operator"], personas["approver"]
    plan = submitted_plan(
        operator,
        name="soaked",
        wave_spec="100%",
        soak_minutes=30,
        respect_maintenance_windows=False,
        selection={"names": [first.name, second.name]},
    )
    wave = plan.waves.get()
    run_tick()
    actions.approve_wave(wave, acting_user=approver, comment="go")
    for _ in range(300):
        run_tick()
        wave.refresh_from_db()
        if wave.status == WaveStatus.SOAKING:
            break
    assert wave.status == WaveStatus.SOAKING
    assert set(plan.targets.values_list("status", flat=True)) == {TargetStatus.ENABLED}

    run_tick()  # nothing wrong: the watch reads both clusters and goes on soaking
    plan.refresh_from_db()
    assert plan.status == PlanStatus.RUNNING

    node = linux_nodes(first)[0]
    change(fleet, first, notReady=[node])
    run_tick()

    plan.refresh_from_db()
    wave.refresh_from_db()
    assert plan.status == PlanStatus.PAUSED
    assert wave.status == WaveStatus.PAUSED
    assert first.name in plan.paused_reason
    assert f"node {node} NotReady" in plan.paused_reason
    paused = AuditEvent.objects.filter(action="rollout.plan_paused").last()
    assert paused.after["cluster"] == first.name

    actions.resume_plan(plan, acting_user=operator)
    run_tick()  # the node is still NotReady, but that was acknowledged
    plan.refresh_from_db()
    wave.refresh_from_db()
    assert (plan.status, wave.status) == (PlanStatus.RUNNING, WaveStatus.SOAKING)
    resumed = AuditEvent.objects.filter(action="rollout.plan_resumed").last()
    assert resumed.after == {
        "status": PlanStatus.RUNNING,
        "acknowledged": {first.name: [f"{node}/NotReady"]},
    }

    other = linux_nodes(second)[0]
    change(fleet, second, warnings={other: ["UnexpectedIPTablesRules"]})
    run_tick()
    plan = RolloutPlan.objects.get(pk=plan.pk)
    assert plan.status == PlanStatus.PAUSED
    assert f"warning UnexpectedIPTablesRules on {other}" in plan.paused_reason
