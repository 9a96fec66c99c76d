"""The engine against AKS as it really behaves (issue 15), each case set up in aksim as Azure
does it: the ebpf-host-routing label may be absent, AKS runs operations of its own and answers
409 meanwhile, user rules under eBPF host routing keep Cilium agents from starting and taint
nodes, and the iptables refusal outlasts the rules' removal until the monitor checks again."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from aksim.fleetfile import Cluster as Spec
from fleet.azure import gateway
from fleet.choices import SyncTrigger
from fleet.models import Cluster
from fleet.sync import run_sync
from preflight.scans import scan_for_rollout
from rollout import engine
from rollout.choices import TargetStatus
from tests.aksim.builders import eligible_clean
from tests.aksim_server import Aksim
from tests.factories import lone_target
from tests.rollout.stepping import run_until_settled

pytestmark = pytest.mark.django_db


def change(aksim: Aksim, spec: Spec, **what) -> dict:
    return aksim.admin("POST", f"clusters/{spec.key}/change", what)


def puts(aksim: Aksim, spec: Spec, kind: str) -> list[dict]:
    return [p for p in aksim.admin("GET", "puts")[kind] if p["clusterId"] == spec.arm_id]


def step_until(target, wanted, limit: int = 400) -> list[str]:
    """Step one at a time until `wanted(target)` holds; the statuses seen."""
    seen = [target.status]
    for _ in range(limit):
        target.refresh_from_db()
        if wanted(target):
            return seen
        status = engine.advance(target.pk, go_on=False).status
        if status != seen[-1]:
            seen.append(status)
        time.sleep(0.02)
    raise AssertionError(f"never reached: {seen}")


def monitor_sees(aksim: Aksim, spec: Spec, nodes: list[str]) -> None:
    """Wait for azure-iptables-monitor's next check (300 s of Azure time)."""
    deadline = time.monotonic() + 10
    while aksim.truth(spec)["monitorSeesUserRulesOn"] != sorted(nodes):
        assert time.monotonic() < deadline, aksim.truth(spec)
        time.sleep(0.05)


def test_nodes_without_the_ebpf_label_still_verify(fleet, personas, client_as):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    change(fleet, spec, ebpfLabel=False)  # its value is documented nowhere: never required
    target = lone_target(personas["operator"], spec.name)

    assert run_until_settled(target)[-1] == "enabled"

    target.refresh_from_db()
    linux = [n for n in spec.nodes() if n.linux]
    note = f"0 of {len(linux)} Linux node(s) carry the kubernetes.azure.com/ebpf-host-routing"
    assert target.profile_after["labels"].startswith(note)
    page = client_as("viewer").get(
        reverse("rollout:wave", args=[target.plan_id, target.wave.index])
    )
    assert note in page.content.decode()  # shown on the wave page, for the record


def test_a_409_while_aks_runs_its_own_operation_waits_and_sends_the_change_again(fleet, personas):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    fleet.admin("PUT", "faults", {"backgroundOperationRate": 1.0})  # AKS busy at every PUT
    target = lone_target(personas["operator"], spec.name)

    step_until(target, lambda t: t.error_code == "OperationNotAllowed")

    assert target.status == TargetStatus.READY
    assert "another operation on the cluster" in target.error_message
    assert "Operation is not allowed because there's an in progress" in target.error_message
    fleet.admin("PUT", "faults", {"backgroundOperationRate": 0.0})

    assert run_until_settled(target)[-1] == "enabled"
    refused = puts(fleet, spec, "refused")  # as often as it tried while AKS was busy
    assert refused
    # 409 while AKS was busy; a 412 where its operation ended between Wavegate's read and PUT
    assert 409 in {p["status"] for p in refused}
    assert {p["status"] for p in refused} <= {409, 412}
    assert len(puts(fleet, spec, "accepted")) == 1


def test_user_rules_under_bpfveth_keep_cilium_agents_down_and_fail_verification(fleet, personas):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    node = next(n.name for n in spec.nodes() if n.linux)
    target = lone_target(personas["operator"], spec.name)
    step_until(target, lambda t: t.status == TargetStatus.ENABLING and t.continuation_token)
    # Added after AKS accepted the change: its monitor finds them once eBPF host routing is on.
    change(fleet, spec, userRules={node: ["docker"]})

    assert run_until_settled(target)[-1] == "failed"

    target.refresh_from_db()
    assert target.error_code == "IPTablesWarnings"
    said = target.error_message
    assert f"monitor as holding user-installed iptables rules: {node}" in said
    assert "without a ready Cilium agent" in said
    assert node in said
    assert "tainted node.cilium.io/agent-not-ready" in said


def removed_after_aks_saw_them(aksim: Aksim, spec: Spec) -> str:
    """Rules put on a node, seen by AKS's iptables monitor, then removed: the node is clean,
    and AKS goes on refusing until the monitor's next check."""
    node = next(n.name for n in spec.nodes() if n.linux)
    change(aksim, spec, userRules={node: ["docker"]})
    monitor_sees(aksim, spec, [node])
    change(aksim, spec, userRules={node: []})
    return node


def scanned_clean(spec: Spec, personas) -> None:
    """A clean preflight scan of the cluster now, which a rollout soon after reuses."""
    cluster = Cluster.objects.get(name=spec.name)
    scan = scan_for_rollout(cluster, requested_by=personas["operator"], azure=gateway())
    assert scan is not None
    assert scan.status == "clean", scan.message


def test_a_preflight_waits_for_aks_monitor_to_clear_its_label_then_goes_on(fleet, personas):
    node = removed_after_aks_saw_them(fleet, spec := fleet.one(eligible_clean, "clean cluster"))
    target = lone_target(personas["operator"], spec.name)

    step_until(target, lambda t: t.error_code in ("AwaitingIptablesMonitor", "PreflightBlocked"))

    assert target.status == TargetStatus.PREFLIGHT, target.error_message
    assert f"AKS's own check flags {node}" in target.error_message
    assert "removed a short while ago" in target.error_message
    assert "WAVEGATE_IPTABLES_REFUSAL_RETRY_MINUTES = 15" in target.error_message
    assert run_until_settled(target)[-1] == "enabled"
    assert len(puts(fleet, spec, "accepted")) == 1


def test_a_label_that_stays_past_the_retry_time_blocks_the_cluster(fleet, personas, settings):
    removed_after_aks_saw_them(fleet, spec := fleet.one(eligible_clean, "clean cluster"))
    settings.WAVEGATE_IPTABLES_REFUSAL_RETRY_MINUTES = 0
    target = lone_target(personas["operator"], spec.name)

    assert run_until_settled(target)[-1] == "blocked"

    target.refresh_from_db()
    assert "AKS's own check still flags nodes" in target.error_message
    assert puts(fleet, spec, "accepted") == puts(fleet, spec, "refused") == []


def test_an_iptables_refusal_that_outlasts_the_rules_is_retried_until_aks_accepts(fleet, personas):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    scanned_clean(spec, personas)
    removed_after_aks_saw_them(fleet, spec)
    target = lone_target(personas["operator"], spec.name)  # its preflight reuses the scan

    step_until(target, lambda t: t.error_code == "UserInstalledIPTablesRulesFound")

    assert target.status == TargetStatus.READY, target.error_message
    assert "re-checks the nodes every few minutes" in target.error_message
    assert "WAVEGATE_IPTABLES_REFUSAL_RETRY_MINUTES = 15" in target.error_message
    assert run_until_settled(target)[-1] == "enabled"
    refused = puts(fleet, spec, "refused")
    assert refused
    codes = {p["errorCode"] for p in refused}
    assert "UserInstalledIPTablesRulesFound" in codes
    # and, among this many PUTs, perhaps one that met an operation of AKS's own (409, 412)
    assert codes <= {"UserInstalledIPTablesRulesFound", "OperationNotAllowed", "PreconditionFailed"}
    assert len(puts(fleet, spec, "accepted")) == 1


def test_an_iptables_refusal_past_the_retry_time_fails_with_what_to_do(fleet, personas, settings):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    scanned_clean(spec, personas)
    removed_after_aks_saw_them(fleet, spec)
    settings.WAVEGATE_IPTABLES_REFUSAL_RETRY_MINUTES = 0
    target = lone_target(personas["operator"], spec.name)

    assert run_until_settled(target)[-1] == "failed"

    target.refresh_from_db()
    assert target.error_code == "UserInstalledIPTablesRulesFound"
    assert "User-installed iptables rules found" in target.error_message
    assert "scan the cluster again" in target.error_message


def test_an_aborted_operation_fails_the_cluster_with_its_reason(fleet, personas):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    target = lone_target(personas["operator"], spec.name)
    step_until(target, lambda t: t.status == TargetStatus.ENABLING and t.continuation_token)
    client = fleet.container_service(spec.subscription_id)
    # Someone stops it in Azure (az aks operation-abort): the operation ends Canceled.
    client.managed_clusters.begin_abort_latest_operation(spec.resource_group, spec.name)

    assert run_until_settled(target)[-1] == "failed"

    target.refresh_from_db()
    assert target.error_code == "OperationCanceled"
    assert "canceled" in target.error_message
    assert "aborted it" in target.error_message
    assert len(puts(fleet, spec, "accepted")) == 1  # nothing sent again by itself


def test_a_lagging_resource_graph_does_not_undo_what_the_engine_read(fleet, personas, settings):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    fleet.admin("PUT", "faults", {"graphLagSeconds": 60000})  # 100 s at time scale 600
    target = lone_target(personas["operator"], spec.name)
    assert run_until_settled(target)[-1] == "enabled"
    row = Cluster.objects.get(name=spec.name)
    assert (row.acceleration_mode, row.provisioning_state) == ("BpfVeth", "Succeeded")

    assert run_sync(SyncTrigger.COMMAND).status == "succeeded"

    row.refresh_from_db()
    assert (row.acceleration_mode, row.provisioning_state) == ("BpfVeth", "Succeeded")
    # Resource Graph does still show the cluster as it was before the change: without the
    # guard, the sync would have put the old mode back.
    settings.WAVEGATE_GRAPH_LAG_MINUTES = 0
    run_sync(SyncTrigger.COMMAND)
    row.refresh_from_db()
    assert row.acceleration_mode == "None"
