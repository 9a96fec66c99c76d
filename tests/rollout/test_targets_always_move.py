"""No target that cannot move (issue 14 §4): an Azure error that cannot heal fails a cluster at
once with Azure's own code and message, an in-flight state that outlives its deadline fails with
the last error, and a failed cluster always offers what an operator can do about it (retry, skip,
roll back, mark done after a check by hand), even once its wave is done."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from rollout import actions, engine
from rollout.choices import PlanStatus, TargetStatus, WaveStatus
from rollout.models import RolloutTarget, Wave
from tests.aksim.builders import eligible_clean
from tests.factories import approved_plan, lone_target, make_cluster
from tests.rollout.stepping import run_until_settled

pytestmark = pytest.mark.django_db
T = TargetStatus


def put_in(target: RolloutTarget, status: str, **fields) -> None:
    now = timezone.now()
    RolloutTarget.objects.filter(pk=target.pk).update(
        status=status, status_since=now, started_at=now, **fields
    )
    target.refresh_from_db()


def test_a_cluster_deleted_in_azure_while_verifying_fails_at_once_with_azures_code(fleet, personas):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    target = lone_target(personas["operator"], spec.name)
    put_in(target, T.VERIFYING, verifying_since=timezone.now())
    fleet.admin("POST", f"clusters/{spec.key}/change", {"delete": True})

    outcome = engine.advance(target.pk, go_on=False)

    assert outcome.status == T.FAILED
    target.refresh_from_db()
    assert target.error_code == "ResourceNotFound"
    assert f"managedClusters/{spec.name}' under resource group" in target.error_message
    assert "gone from Azure" in target.error_message
    event = AuditEvent.objects.filter(action="rollout.target_failed").latest("pk")
    assert event.after["error_code"] == "ResourceNotFound"


def test_a_roll_back_whose_access_was_removed_fails_at_once_and_can_be_marked_done(fleet, personas):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    target = lone_target(personas["operator"], spec.name)
    assert run_until_settled(target)[-1] == T.ENABLED
    actions.roll_back_target(target, acting_user=personas["operator"], comment="latency up")
    fleet.admin("POST", f"clusters/{spec.key}/change", {"denyAccess": True})

    outcome = engine.advance(target.pk, go_on=False)

    assert outcome.status == T.FAILED
    target.refresh_from_db()
    assert target.error_code == "RollbackAuthorizationFailed"
    assert "does not have authorization" in target.error_message
    assert "Restore the role" in target.error_message
    # A retry would set BpfVeth again: refused. Checked by hand, it can be marked rolled back.
    with pytest.raises(actions.ActionRefused, match="Roll it back again"):
        actions.retry_target(target, acting_user=personas["operator"])

    actions.mark_target_done(
        target, acting_user=personas["operator"], reason="portal shows mode None"
    )

    target.refresh_from_db()
    assert target.status == T.ROLLED_BACK
    assert "portal shows mode None" in target.error_message
    assert "does not have authorization" in target.error_message  # what it failed with stays
    event = AuditEvent.objects.filter(action="rollout.target_marked_done").get()
    assert event.actor_name == personas["operator"].get_username()
    assert event.after["reason"] == "portal shows mode None"


def test_an_operation_that_never_ends_fails_the_cluster_at_its_deadline(fleet, personas, settings):
    spec = fleet.one(eligible_clean, "eligible clean cluster")
    fleet.admin("PUT", "faults", {"stuckOperations": True})
    target = lone_target(personas["operator"], spec.name)
    for _ in range(10):
        if engine.advance(target.pk, go_on=False).status == T.ENABLING:
            break
    target.refresh_from_db()
    assert target.status == T.ENABLING
    assert target.continuation_token  # the PUT went out; Azure's operation runs and runs
    assert engine.advance(target.pk, go_on=False).status == T.ENABLING  # within its deadline

    RolloutTarget.objects.filter(pk=target.pk).update(
        status_since=timezone.now() - datetime.timedelta(minutes=241)
    )
    outcome = engine.advance(target.pk, go_on=False)

    assert outcome.status == T.FAILED
    target.refresh_from_db()
    assert target.error_code == "DeadlineExceeded"
    assert "Still changing after 240 minutes" in target.error_message
    assert "WAVEGATE_DEADLINE_CHANGE_MINUTES" in target.error_message


def test_a_cluster_in_flight_shows_when_the_engine_stops_waiting_for_it(client_as, personas):
    make_cluster(name="aks-0")
    target = lone_target(personas["operator"], "aks-0")
    put_in(target, T.ENABLING)
    assert target.status_since is not None
    due = timezone.localtime(target.status_since + datetime.timedelta(minutes=240))

    html = (
        client_as("viewer")
        .get(reverse("rollout:wave", kwargs={"pk": target.plan_id, "index": 1}))
        .content.decode()
    )

    assert f"deadline {due:%m-%d %H:%M}" in html


@pytest.fixture
def done_wave_with_a_failure(personas):
    """A running plan whose first wave is done, one of its two clusters failed (within a
    budget of 1), and whose second wave is running."""
    for i in range(4):
        make_cluster(name=f"aks-{i}")
    plan = approved_plan(
        personas["operator"], personas["approver"], name="p", wave_spec="2, 100%",
        failure_budget="1",
    )  # fmt: skip
    plan.status = PlanStatus.RUNNING
    plan.save()
    first, second = plan.waves.order_by("index")
    Wave.objects.filter(pk=first.pk).update(status=WaveStatus.DONE, finished_at=timezone.now())
    Wave.objects.filter(pk=second.pk).update(status=WaveStatus.RUNNING)
    ok, bad = first.targets.order_by("position")
    put_in(ok, T.ENABLED)
    put_in(
        bad, T.FAILED, error_code="ResourceNotFound",
        error_message="Reading cluster aks-1: not found in Azure.",
    )  # fmt: skip
    return plan, bad


def test_a_failed_cluster_of_a_done_wave_offers_every_action(client_as, done_wave_with_a_failure):
    plan, bad = done_wave_with_a_failure

    html = (
        client_as("operator")
        .get(reverse("rollout:wave", kwargs={"pk": plan.pk, "index": 1}))
        .content.decode()
    )

    row = html[html.index(f'data-target="{bad.pk}"') :]
    row = row[: row.index("</tr>")]
    for action in ("retry", "skip", "roll-back", "mark-done"):
        assert f"/targets/{bad.pk}/{action}" in row, action


def test_a_retry_after_the_wave_is_done_reopens_the_wave(done_wave_with_a_failure, personas):
    plan, bad = done_wave_with_a_failure

    actions.retry_target(bad, acting_user=personas["operator"])

    bad.refresh_from_db()
    assert bad.status == T.PENDING
    wave = plan.waves.get(index=1)
    assert wave.status == WaveStatus.RUNNING
    assert wave.finished_at is None
    reopened = AuditEvent.objects.filter(action="rollout.wave_reopened").get()
    assert reopened.after["was"] == WaveStatus.DONE
    retried = AuditEvent.objects.filter(action="rollout.target_retried").get()
    assert retried.after["last_error_code"] == "ResourceNotFound"


def test_skipping_a_failed_cluster_keeps_its_error_visible(
    client_as, done_wave_with_a_failure, personas
):
    plan, bad = done_wave_with_a_failure

    actions.skip_target(bad, acting_user=personas["operator"], reason="decommissioned")

    html = (
        client_as("viewer")
        .get(reverse("rollout:wave", kwargs={"pk": plan.pk, "index": 1}))
        .content.decode()
    )
    assert "Skipped by" in html
    assert "decommissioned" in html
    assert "Reading cluster aks-1: not found in Azure." in html
    assert "ResourceNotFound" in html


def test_marking_done_needs_a_reason_and_a_failed_cluster(
    client_as, done_wave_with_a_failure, personas
):
    plan, bad = done_wave_with_a_failure
    ok = plan.targets.get(wave__index=1, status=T.ENABLED)

    with pytest.raises(actions.ActionRefused, match="Say what you checked"):
        actions.mark_target_done(bad, acting_user=personas["operator"], reason="  ")
    with pytest.raises(actions.ActionRefused, match="Only a failed cluster"):
        actions.mark_target_done(ok, acting_user=personas["operator"], reason="looked fine")
    response = client_as("operator").post(
        reverse("rollout:target_mark_done", kwargs={"pk": plan.pk, "target_id": bad.pk}),
        {"comment": "checked in the portal: BpfVeth, nodes Ready"},
    )

    assert response.status_code == 302
    bad.refresh_from_db()
    assert bad.status == T.ENABLED
    assert "checked in the portal" in bad.error_message
    assert "not found in Azure" in bad.error_message
