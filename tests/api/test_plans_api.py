"""Plans over the API: the page's form checks the input, the page's actions do the work, and
refusals carry the page's words (403 for who asks, 409 for the state things are in)."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from rollout.choices import PlanStatus, WaveStatus
from rollout.models import RolloutPlan
from tests.api.helpers import Api, token_for
from tests.factories import make_cluster

pytestmark = pytest.mark.django_db

PLAN = {
    "name": "canary",
    "names": ["aks-a*"],
    "wave_spec": "1, 100%",
    "soak_minutes": 0,
    "respect_maintenance_windows": False,
}


@pytest.fixture
def fleet(db):
    return [make_cluster(name=f"aks-a{n}", ring="canary") for n in range(3)]


@pytest.fixture
def operator(personas):
    return Api(token_for(personas["operator"]))


@pytest.fixture
def approver(personas):
    return Api(token_for(personas["approver"]))


def test_a_plan_is_created_and_submitted_as_the_page_does(fleet, operator):
    made = operator.post("plans/", {**PLAN, "submit": True})
    assert made.status_code == 201, made.json()
    plan = RolloutPlan.objects.get(pk=made.json()["id"])
    assert plan.status == PlanStatus.SUBMITTED
    assert made.json()["url"].endswith(f"/plans/{plan.pk}/")
    assert plan.selection["names"] == ["aks-a*"]
    status = operator.get(f"plans/{plan.pk}/status/").json()
    assert [w["status"] for w in status["waves"]] == ["awaiting_approval", "pending"]
    assert status["progress"]["total"] == 3
    assert status["progress"]["not_started"] == 3
    assert AuditEvent.objects.filter(action="rollout.plan_created", plan_id=plan.pk).exists()


def test_invalid_plans_are_refused_with_the_pages_words_and_nothing_is_saved(fleet, operator):
    bad_spec = operator.post("plans/", {**PLAN, "wave_spec": "50%, 10%"})
    assert bad_spec.status_code == 400
    body = bad_spec.json()
    assert body["code"] == "invalid"
    assert body["field"] == "wave_spec"
    assert body["message"].startswith("wave_spec: ")
    too_many = operator.post("plans/", {**PLAN, "concurrency": 0})
    assert too_many.json()["field"] == "concurrency"
    assert "greater than or equal to 1" in too_many.json()["message"]
    unknown = operator.post("plans/", {**PLAN, "colour": "blue"})
    assert unknown.status_code == 400
    assert unknown.json()["field"] == "colour"
    wrong_type = operator.post("plans/", {**PLAN, "names": "aks-a1"})
    assert wrong_type.status_code == 400
    assert wrong_type.json()["field"] == "names"
    not_json = operator.client.post(
        "/api/v1/plans/", "{", content_type="application/json", **operator.headers
    )
    assert not_json.status_code == 400
    assert not_json.json()["code"] == "malformed"
    assert not RolloutPlan.objects.exists()


def test_four_eyes_the_author_may_not_approve_and_another_approver_may(fleet, personas, approver):
    author = Api(token_for(personas["admin"]))
    plan_id = author.post("plans/", {**PLAN, "submit": True}).json()["id"]
    refused = author.post(f"plans/{plan_id}/waves/1/approve/", {"comment": "mine"})
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    assert "four eyes" in refused.json()["message"]
    assert AuditEvent.objects.filter(action="rollout.decision_refused").count() == 1
    done = approver.post(f"plans/{plan_id}/waves/1/approve/", {"comment": "ok"})
    assert done.status_code == 200, done.json()
    assert done.json()["message"] == "You approved wave 1; it is approved."
    assert done.json()["plan"]["waves"][0]["status"] == WaveStatus.APPROVED
    again = approver.post(f"plans/{plan_id}/waves/1/approve/", {"comment": "ok"})
    assert again.status_code == 409


def test_an_approval_for_a_version_not_reviewed_is_refused(fleet, operator, approver):
    plan_id = operator.post("plans/", {**PLAN, "submit": True}).json()["id"]
    stale = approver.post(
        f"plans/{plan_id}/waves/1/approve/", {"comment": "ok", "plan_hash": "0" * 64}
    )
    assert stale.status_code == 409
    assert RolloutPlan.objects.get().waves.get(index=1).status == WaveStatus.AWAITING_APPROVAL


def test_an_edit_goes_back_to_draft_and_a_running_plan_cannot_be_edited(fleet, operator):
    plan_id = operator.post("plans/", {**PLAN, "submit": True}).json()["id"]
    edited = operator.patch(f"plans/{plan_id}/", {"concurrency": 2})
    assert edited.status_code == 200, edited.json()
    assert edited.json()["status"] == PlanStatus.DRAFT
    assert edited.json()["concurrency"] == 2
    assert edited.json()["wave_spec"] == "1, 100%"
    RolloutPlan.objects.filter(pk=plan_id).update(status=PlanStatus.RUNNING)
    refused = operator.patch(f"plans/{plan_id}/", {"concurrency": 3})
    assert refused.status_code == 409
    assert "can no longer be edited" in refused.json()["message"]


def test_preview_cuts_waves_without_saving(fleet, operator):
    preview = operator.post("plans/preview/", {"names": ["aks-a*"], "wave_spec": "1, 100%"})
    assert preview.status_code == 200, preview.json()
    assert [w["size"] for w in preview.json()["waves"]] == [1, 2]
    assert {r["name"] for r in preview.json()["rows"]} == {"aks-a0", "aks-a1", "aks-a2"}
    assert not RolloutPlan.objects.exists()


def test_pause_resume_abort_and_the_emergency_stop(fleet, operator, personas):
    plan_id = operator.post("plans/", {**PLAN, "submit": True}).json()["id"]
    paused = operator.post(f"plans/{plan_id}/pause/", {"reason": "lunch"})
    assert paused.status_code == 200
    assert paused.json()["plan"]["status"] == "paused"
    stop = operator.post("emergency-stop/", {"reason": "incident 42"})
    assert stop.status_code == 201
    assert stop.json()["in_force"] is True
    refused = operator.post(f"plans/{plan_id}/resume/")
    assert refused.status_code == 409
    assert "emergency stop is in force" in refused.json()["message"]
    no_reason = operator.post("emergency-stop/lift/", {"reason": ""})
    assert no_reason.status_code == 400
    assert no_reason.json()["field"] == "reason"
    assert operator.post("emergency-stop/lift/", {"reason": "fixed"}).json()["in_force"] is False
    assert operator.post(f"plans/{plan_id}/resume/").status_code == 200
    aborted = operator.post(f"plans/{plan_id}/abort/", {"reason": "not today"})
    assert aborted.json()["plan"]["status"] == "aborted"
    assert aborted.json()["plan"]["finished"]
    viewer = Api(token_for(personas["viewer"]))
    assert viewer.post("emergency-stop/", {"reason": "x"}).status_code == 403


def test_targets_are_listed_by_wave_and_state(fleet, operator):
    plan_id = operator.post("plans/", {**PLAN, "submit": True}).json()["id"]
    first = operator.get(f"plans/{plan_id}/targets/", wave=1).json()
    assert [t["cluster_name"] for t in first["results"]] == ["aks-a0"]
    everything = operator.get(f"plans/{plan_id}/targets/", limit=2).json()
    assert len(everything["results"]) == 2
    assert everything["next"]
    skipped = operator.post(
        f"plans/{plan_id}/targets/{first['results'][0]['id']}/skip/", {"reason": "later"}
    )
    assert skipped.status_code in (200, 409)
    assert operator.get(f"plans/{plan_id}/targets/", status="bogus").status_code == 400


def test_unknown_ids_are_404_json(operator):
    missing = operator.get("plans/999999/status/")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


def test_control_characters_are_refused_in_json_naming_the_parameter(operator):
    refused = operator.get("plans/", name="a\x00b")
    assert refused.status_code == 400
    assert refused.json()["field"] == "name"
    assert "control character (U+0000)" in refused.json()["message"]
    body = operator.post("plans/", {**PLAN, "name": "a\x00b"})
    assert body.status_code == 400
    assert body.json()["field"] == "name"
    assert not RolloutPlan.objects.exists()


def test_hand_made_cursors_and_misspelt_filters_are_refused_not_ignored(fleet, operator):
    operator.post("plans/", {**PLAN, "submit": True})
    for cursor in ("cD1hYmM=", "cD05OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"):  # p=abc, p=99…9 (27 digits)
        refused = operator.get("plans/", cursor=cursor)
        assert refused.status_code == 400, cursor
        assert refused.json()["field"] == "cursor"
    misspelt = operator.get("plans/", stauts="running")
    assert misspelt.status_code == 400
    assert misspelt.json()["field"] == "stauts"


def test_tags_and_names_that_would_read_back_as_other_lines_are_refused(fleet, operator):
    for tags in ({"a=b": "c"}, {"env": "prod\nring=x"}, {"": "x"}):
        refused = operator.post("plans/", {**PLAN, "tags": tags})
        assert refused.status_code == 400, tags
        assert refused.json()["field"] == "tags"
    names = operator.post("plans/", {**PLAN, "names": ["aks-a0\naks-*"]})
    assert names.json()["field"] == "names"
    surrogate = operator.client.post(
        "/api/v1/plans/",
        '{"name": "bad \\ud800", "names": ["aks-a*"]}',
        content_type="application/json",
        **operator.headers,
    )
    assert surrogate.status_code == 400
    assert surrogate.json()["field"] == "name"
    assert not RolloutPlan.objects.exists()


def test_a_rejection_answers_with_the_plan_as_it_is_now(fleet, operator, approver):
    plan_id = operator.post("plans/", {**PLAN, "submit": True}).json()["id"]
    rejected = approver.post(f"plans/{plan_id}/waves/1/reject/", {"comment": "not now"})
    assert rejected.status_code == 200, rejected.json()
    assert rejected.json()["plan"]["status"] == "rejected"
    assert rejected.json()["plan"]["finished"] is True
