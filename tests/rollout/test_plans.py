"""Creating, submitting and editing plans: frozen waves, reasons for what is left out,
exclusive claims, the content hash approvals are bound to, and refusals that write nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from audit.models import AuditEvent
from rollout import actions
from rollout.choices import PlanStatus, WaveStatus
from rollout.models import Approval, ClusterClaim, RolloutPlan, RolloutTarget
from tests.factories import (
    approved_plan,
    make_cluster,
    make_plan,
    make_subscription,
    submitted_plan,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(personas):
    return personas["operator"]


def make_fleet(n: int = 20) -> list:
    subscription = make_subscription()
    rings = ("broad", "early", "canary")
    return [
        make_cluster(
            subscription=subscription,
            name=f"aks-{i:02d}",
            ring=rings[i % 3],
            tags={"ring": rings[i % 3], "team": "pay"},
            location=("westeurope", "eastus")[i % 2],
        )
        for i in range(n)
    ]


def wave_lists(plan: RolloutPlan) -> list[list[str]]:
    return [
        [t.cluster.name for t in wave.targets.select_related("cluster").order_by("position")]
        for wave in plan.waves.order_by("index")
    ]


def test_submitting_freezes_the_waves_in_ring_region_name_order(operator):
    make_fleet(20)
    plan = make_plan(operator, name="bpf-all", wave_spec="1, 10%, 50%, 100%")

    plan = actions.submit_plan(plan, acting_user=operator)

    assert plan.status == PlanStatus.SUBMITTED
    waves = wave_lists(plan)
    assert [len(w) for w in waves] == [1, 1, 8, 10]
    flat = [n for w in waves for n in w]
    rings = [name_ring(n) for n in flat]
    assert rings == sorted(rings, key=("canary", "early", "broad").index)
    assert list(plan.waves.values_list("status", flat=True)) == [
        WaveStatus.AWAITING_APPROVAL,
        WaveStatus.PENDING,
        WaveStatus.PENDING,
        WaveStatus.PENDING,
    ]
    assert ClusterClaim.objects.filter(plan=plan).count() == 20
    assert len(plan.content_hash) == 64
    submitted = AuditEvent.objects.get(action="rollout.plan_submitted")
    assert submitted.after["waves"] == [1, 1, 8, 10]


def name_ring(name: str) -> str:
    from fleet.models import Cluster

    return Cluster.objects.get(name=name).ring


def test_ineligible_and_blocked_clusters_are_set_apart_with_reasons(operator):
    make_fleet(4)
    make_cluster(name="old", kubernetes_version="1.30.1")
    make_cluster(name="dirty", preflight="blocked")
    plan = make_plan(operator, name="p", wave_spec="100%")

    plan = actions.submit_plan(plan, acting_user=operator)

    assert sorted(n for w in wave_lists(plan) for n in w) == [f"aks-0{i}" for i in range(4)]
    reasons = {e["name"]: e["reason"] for e in plan.excluded}
    assert set(reasons) == {"old", "dirty"}
    assert reasons["old"].startswith("not eligible: ")
    assert "1.30" in reasons["old"]
    assert "user-installed iptables rules" in reasons["dirty"]


def test_a_cluster_in_another_active_plan_is_left_out_naming_that_plan(operator):
    make_fleet(6)
    submitted_plan(operator, name="canaries", wave_spec="100%", selection={"rings": ["canary"]})
    second = make_plan(operator, name="everything", wave_spec="1, 100%")

    second = actions.submit_plan(second, acting_user=operator)

    left_out = {e["reason"] for e in second.excluded}
    assert left_out == {"in plan 'canaries', which is still active"}
    assert len(second.excluded) == 2
    assert RolloutTarget.objects.filter(plan=second).count() == 4


def test_editing_a_submitted_plan_voids_its_approvals_and_frees_its_clusters(operator, personas):
    make_fleet(5)
    plan = approved_plan(operator, personas["approver"], name="p", wave_spec="1, 100%")

    plan = actions.edit_plan(plan, acting_user=operator, soak_minutes=60)

    assert plan.status == PlanStatus.DRAFT
    assert not Approval.objects.exists()
    assert not ClusterClaim.objects.exists()
    assert plan.content_hash == ""
    edited = AuditEvent.objects.get(action="rollout.plan_edited")
    assert edited.after["approvals_voided"] == 1
    assert (edited.before["soak_minutes"], edited.after["soak_minutes"]) == (30, 60)


def test_the_hash_covers_the_frozen_cluster_lists(operator):
    clusters = make_fleet(6)
    plan = submitted_plan(operator, name="p", wave_spec="1, 100%")
    first_hash = plan.content_hash
    plan = actions.edit_plan(plan, acting_user=operator)  # same settings
    clusters[0].removed_at = timezone.now() - timedelta(minutes=1)
    clusters[0].save()

    plan = actions.submit_plan(plan, acting_user=operator)

    assert plan.content_hash != first_hash


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"name": "p", "wave_spec": "1, 25%"}, "must be 100%"),
        ({"name": "p", "wave_spec": "ten, 100%"}, "neither a number"),
        ({"name": "p", "failure_budget": "lots"}, "failure budget"),
        ({"name": "p", "failure_budget": "150%"}, "failure budget"),
        ({"name": "  "}, "name"),
        ({"name": "p", "goal": "Turbo"}, "goal"),
        ({"name": "p", "concurrency": 0}, "Concurrency"),
        ({"name": "p", "approvals_needed": 0}, "approval"),
        ({"name": "p", "status": "running"}, "Unknown plan field"),
    ],
)
def test_a_bad_plan_is_refused_with_what_to_change_and_nothing_is_saved(operator, fields, says):
    with pytest.raises(actions.ActionRefused, match=says):
        actions.create_plan(acting_user=operator, **fields)
    assert not RolloutPlan.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="rollout.").exists()


def test_a_plan_that_selects_nothing_usable_is_refused_and_stays_a_draft(operator):
    make_fleet(3)
    plan = make_plan(operator, name="p", wave_spec="100%", selection={"regions": ["mars"]})

    with pytest.raises(actions.ActionRefused, match="selects no cluster"):
        actions.submit_plan(plan, acting_user=operator)

    plan.refresh_from_db()
    assert plan.status == PlanStatus.DRAFT
    assert not plan.waves.exists()
    assert not ClusterClaim.objects.exists()


@pytest.mark.parametrize("role", ["viewer", "approver", "auditor"])
def test_only_operators_and_admins_plan(personas, role):
    with pytest.raises(PermissionDenied):
        actions.create_plan(acting_user=personas[role], name="p")
    assert not RolloutPlan.objects.exists()
