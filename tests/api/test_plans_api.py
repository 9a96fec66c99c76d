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


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"names": ["aks-a0\u2028aks-a1"]}, "names"),  # would select a second cluster
        ({"rings": ["canary\x85prod"]}, "rings"),
        ({"tags": {"env": "prod\x1ering=canary"}}, "tags"),  # would add a second criterion
        ({"tags": {"env": "a", " env": "b"}}, "tags"),  # one tag once trimmed: the last won
    ],
)
def test_an_item_that_would_read_back_as_two_is_refused(fleet, operator, fields, field):
    refused = operator.post("plans/", {**PLAN, **fields})

    assert refused.status_code == 400
    assert refused.json()["field"] == field
    assert not RolloutPlan.objects.exists()


def test_four_eyes_the_author_may_not_approve_and_another_approver_may(fleet, personas, approver):
    author = Api(token_for(personas["admin"]))
    plan_id = author.post("plans/", {**PLAN, "submit": True}).json()["id"]
    read = author.get(f"plans/{plan_id}/").json()["content_hash"]
    refused = author.post(
        f"plans/{plan_id}/waves/1/approve/", {"comment": "mine", "plan_hash": read}
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    assert "four eyes" in refused.json()["message"]
    assert AuditEvent.objects.filter(action="rollout.decision_refused").count() == 1
    done = approver.post(f"plans/{plan_id}/waves/1/approve/", {"comment": "ok", "plan_hash": read})
    assert done.status_code == 200, done.json()
    assert done.json()["message"] == "You approved wave 1; it is approved."
    assert done.json()["plan"]["waves"][0]["status"] == WaveStatus.APPROVED
    again = approver.post(f"plans/{plan_id}/waves/1/approve/", {"comment": "ok", "plan_hash": read})
    assert again.status_code == 409


def test_an_approval_must_say_which_version_it_approves(fleet, operator, approver):
    # Without plan_hash, an approver's script would approve whatever the plan had become: an
    # edit widening it after the review, resubmitted, would be approved unread.
    plan_id = operator.post("plans/", {**PLAN, "submit": True}).json()["id"]

    unbound = approver.post(f"plans/{plan_id}/waves/1/approve/", {"comment": "looked fine"})

    assert unbound.status_code == 400
    assert unbound.json()["field"] == "plan_hash"
    assert "content_hash of the plan you reviewed" in unbound.json()["message"]
    assert RolloutPlan.objects.get().waves.get(index=1).status == WaveStatus.AWAITING_APPROVAL


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
    # The state is said first, whatever was sent (as the page), and the refusal recorded.
    invalid_too = operator.patch(f"plans/{plan_id}/", {"wave_spec": "50%, 10%"})
    assert invalid_too.status_code == 409
    assert "can no longer be edited" in invalid_too.json()["message"]
    recorded = AuditEvent.objects.filter(action="rollout.action_refused", plan_id=plan_id)
    assert recorded.count() == 2


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


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("plans/", {"limit": "abc"}, "limit"),
        ("plans/", {"limit": "0"}, "limit"),
        ("plans/", {"limit": "-5"}, "limit"),
        ("plans/", {"limit": "1001"}, "limit"),  # never quietly cut to the maximum
        ("scans/", {"cluster": "1.9"}, "cluster"),  # never truncated to cluster 1
    ],
)
def test_a_value_a_list_cannot_use_is_refused_not_replaced(operator, path, params, field):
    refused = operator.get(path, **params)

    assert refused.status_code == 400, refused.json()
    assert refused.json()["field"] == field


def test_a_plans_targets_by_a_wave_that_is_no_whole_number_are_refused(fleet, operator):
    plan_id = operator.post("plans/", {**PLAN, "submit": True}).json()["id"]

    assert operator.get(f"plans/{plan_id}/targets/", wave="1").status_code == 200
    refused = operator.get(f"plans/{plan_id}/targets/", wave="1.5")
    assert refused.status_code == 400
    assert refused.json()["field"] == "wave"
    assert operator.get("plans/", limit="1").status_code == 200


@pytest.mark.parametrize(
    ("sent", "content_type", "status", "code"),
    [
        ("{not json", "application/json", 400, "malformed"),
        ('{"reason": "typo"}', "application/json", 400, "invalid"),  # submit takes no field
        ("submit it", "text/plain", 415, "unsupported_media_type"),
    ],
)
def test_an_action_without_input_refuses_what_it_cannot_read(
    fleet, operator, sent, content_type, status, code
):
    plan_id = operator.post("plans/", PLAN).json()["id"]

    refused = operator.client.post(
        f"/api/v1/plans/{plan_id}/submit/", sent, content_type=content_type, **operator.headers
    )

    assert refused.status_code == status, refused.json()
    assert refused.json()["code"] == code
    assert RolloutPlan.objects.get().status == PlanStatus.DRAFT  # nothing was done
    assert operator.post(f"plans/{plan_id}/submit/").status_code == 200  # no body: done
