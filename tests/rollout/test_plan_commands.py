"""`manage.py plan_create` and `plan_status`, as a script uses them: a plan from a YAML file,
checked as the new-plan page checks it, with every problem named by its line and field; and
a plan's state with an exit status that says whether it ended well, badly, or not yet."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from audit.models import AuditEvent
from rollout import actions
from rollout.choices import PlanStatus, WaveStatus
from rollout.models import RolloutPlan
from tests.aksim.builders import eligible_clean
from tests.factories import make_cluster, make_user, submitted_plan
from tests.processes import ROOT
from tests.rollout.stepping import run_tick
from tests.scripting import document, ended, manage, run

GOOD = """\
name: canary first
rings: [canary]
names:
  - aks-*
wave_spec: "1, 100%"
soak_minutes: 0
respect_maintenance_windows: false
"""


@pytest.fixture
def inventory(db):
    for n in range(3):
        make_cluster(name=f"aks-canary-{n}", ring="canary", tags={"ring": "canary"})
    make_cluster(name="aks-broad-0")


def plan_file(tmp_path, text: str) -> str:
    path = tmp_path / "plan.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def create(tmp_path, text: str, *more: str, user: str = "operator-user"):
    return run("plan_create", "--from-file", plan_file(tmp_path, text), "--as", user, *more)


# --- plan_create ---------------------------------------------------------------------------


def test_a_good_file_makes_a_draft_and_says_its_waves(inventory, personas, tmp_path):
    ran = create(tmp_path, GOOD, "--json")

    assert ran.status == 0, ran.error
    said = ran.json()
    plan = RolloutPlan.objects.get()
    assert (said["plan"]["id"], said["plan"]["status"]) == (plan.pk, "draft")
    assert said["submitted"] is False
    assert [w["size"] for w in said["preview"]["waves"]] == [1, 2]
    assert plan.created_by == personas["operator"]
    assert plan.selection["rings"] == ["canary"]
    assert (plan.wave_spec, plan.soak_minutes) == ("1, 100%", 0)
    created = AuditEvent.objects.get(action="rollout.plan_created")
    assert created.actor_name == "operator-user"


def test_submit_creates_and_submits_it_and_says_so(inventory, personas, tmp_path):
    ran = create(tmp_path, GOOD, "--submit")

    assert ran.status == 0, ran.error
    plan = RolloutPlan.objects.get()
    assert plan.status == PlanStatus.SUBMITTED
    assert plan.waves.get(index=1).status == WaveStatus.AWAITING_APPROVAL
    assert f"Plan 'canary first' (#{plan.pk}) submitted: its first wave awaits approval." in ran.out
    assert "3 cluster(s) in 2 wave(s) (1, 2)" in ran.out


def test_a_yaml_syntax_error_names_its_line_and_column(inventory, personas, tmp_path):
    ran = create(tmp_path, 'name: broken\nrings: [canary\nwave_spec: "100%"\n', "--json")

    said = ended(ran, 2)
    assert said.startswith(f"{tmp_path / 'plan.yaml'}, line 3, column 10: not valid YAML:")
    assert ran.json()["code"] == "invalid"
    assert ran.json()["field"] == "--from-file"
    assert not RolloutPlan.objects.exists()


def test_an_unknown_field_is_named_with_its_line(inventory, personas, tmp_path):
    ran = create(tmp_path, GOOD + "wave: 3\n", "--json")

    said = ended(ran, 2)
    assert said.startswith(f"{tmp_path / 'plan.yaml'}, line 8: Unknown plan field(s): wave.")
    assert "Known: approvals_needed, concurrency" in said
    assert ran.json() == {"code": "invalid", "message": said, "field": "wave"}


def test_a_bad_wave_spec_and_every_other_form_error_are_named_with_their_lines(
    inventory, personas, tmp_path
):
    text = GOOD.replace('"1, 100%"', '"1, 50%"') + "concurrency: 0\n"

    ran = create(tmp_path, text, "--json")

    said = ended(ran, 2)
    where = tmp_path / "plan.yaml"
    assert f"{where}, line 8, concurrency: Ensure this value is greater than or equal to 1." in said
    body = ran.json()
    assert body["field"] == "concurrency"
    assert body["errors"] == {"concurrency": ["Ensure this value is greater than or equal to 1."]}
    # Once the form's own checks pass, the waves are cut: a spec that cannot be is named too.
    ran = create(tmp_path, GOOD.replace('"1, 100%"', '"1, 50%"'))
    assert f"{where}, line 5, wave_spec: The last wave is 50%; it must be 100%" in ended(ran, 2)
    assert not RolloutPlan.objects.exists()


def test_a_field_of_the_wrong_type_or_given_twice_is_named(inventory, personas, tmp_path):
    wrong = create(tmp_path, GOOD + "concurrency: ten\n")
    twice = create(tmp_path, GOOD + "name: again\n")
    not_a_plan = create(tmp_path, "- name: a list\n")

    assert "plan.yaml, line 8: concurrency is a whole number." in ended(wrong, 2)
    assert "plan.yaml, line 1: name is given twice (also on line 8)." in ended(twice, 2)
    assert "A plan is a mapping of its fields" in ended(not_a_plan, 2)


def test_a_control_character_or_a_nesting_too_deep_is_named_not_a_crash(
    inventory, personas, tmp_path
):
    control = create(tmp_path, "name: a\x01\nwave_spec: '1, 100%'\n", "--json")
    deep = create(tmp_path, "[" * 5000 + "]" * 5000 + "\n", "--json")

    said = ended(control, 2)
    assert "plan.yaml, line 1, column 8: not valid YAML: the character U+0001 cannot" in said
    assert control.json()["field"] == "--from-file"
    assert "nests lists or mappings too deeply" in ended(deep, 2)
    assert not RolloutPlan.objects.exists()


def test_a_viewer_is_refused_in_the_pages_words_and_the_refusal_recorded(
    inventory, personas, tmp_path
):
    ran = create(tmp_path, GOOD, "--json", user="viewer-user")

    said = ended(ran, 3)
    assert "operator or admin role" in said
    assert ran.json()["code"] == "forbidden"
    assert not RolloutPlan.objects.exists()
    refusal = AuditEvent.objects.get(action="access.refused")
    assert refusal.actor_name == "viewer-user"
    assert refusal.after == {"command": "manage.py plan_create", "refusal": said}


def test_a_deactivated_user_is_refused_and_the_refusal_recorded(inventory, personas, tmp_path):
    personas["operator"].is_active = False
    personas["operator"].save()

    ran = create(tmp_path, GOOD, "--json", user="operator-user")

    said = ended(ran, 3)
    assert said == "operator-user is not an active user: a deactivated user cannot act."
    assert ran.json()["field"] == "--as"
    assert not RolloutPlan.objects.exists()
    refusal = AuditEvent.objects.get(action="access.refused")
    assert refusal.actor_name == "operator-user"
    assert refusal.after == {"command": "manage.py plan_create", "refusal": said}


def test_a_cluster_another_plan_holds_refuses_the_submit_and_leaves_no_draft(
    inventory, personas, tmp_path
):
    submitted_plan(personas["operator"], name="first", selection={"rings": ["canary"]})

    ran = create(tmp_path, GOOD, "--submit", "--json")

    assert "first" in ended(ran, 3)
    assert ran.json()["code"] == "conflict"
    assert list(RolloutPlan.objects.values_list("name", flat=True)) == ["first"]


def test_an_unknown_user_is_not_found(inventory, tmp_path):
    ran = create(tmp_path, GOOD, user="nobody")

    assert ended(ran, 4) == "There is no user 'nobody'."


def test_the_documented_example_is_a_valid_plan(personas, tmp_path):
    for n, ring in enumerate(["canary", "early", "broad"]):
        make_cluster(name=f"aks-{ring}-{n}", ring=ring, tags={"ring": ring, "env": "prod"})
    example = ROOT / "docs" / "plan.example.yaml"

    ran = run("plan_create", "--from-file", str(example), "--as", "operator-user", "--json")

    assert ran.status == 0, ran.error
    plan = RolloutPlan.objects.get()
    assert plan.name == yaml.safe_load(example.read_text())["name"]
    assert ran.json()["preview"]["clusters"] == 2  # canary and early, not broad


# --- plan_status ---------------------------------------------------------------------------


def test_a_draft_has_not_ended_exit_5_with_its_report(inventory, personas, tmp_path):
    assert create(tmp_path, GOOD).status == 0
    plan = RolloutPlan.objects.get()

    ran = run("plan_status", "canary first", "--json")

    assert "has not ended: Draft" in ended(ran, 5)
    said = ran.json()
    assert (said["id"], said["status"], said["finished"]) == (plan.pk, "draft", False)
    assert said["waves"] == []


def test_an_aborted_plan_ended_badly_exit_1(inventory, personas):
    plan = submitted_plan(personas["operator"], name="stopped", wave_spec="100%")
    actions.abort_plan(plan, acting_user=personas["operator"], reason="wrong clusters")

    ran = run("plan_status", str(plan.pk))

    assert "ended: Aborted (4 clusters skipped)" in ended(ran, 1)
    assert ran.out.startswith(
        f"Plan 'stopped' (#{plan.pk}): Aborted\nOutcome: Aborted: 4 clusters skipped"
    )


def test_two_plans_of_one_name_want_an_id_and_none_is_not_found(inventory, personas):
    first = submitted_plan(personas["operator"], name="twin", selection={"names": ["aks-broad-0"]})
    second = submitted_plan(personas["operator"], name="twin", selection={"rings": ["canary"]})

    assert f"(ids {first.pk}, {second.pk}): give its id" in ended(run("plan_status", "twin"), 2)
    assert "no plan with the id or the exact name 'x'" in ended(run("plan_status", "x"), 4)


def test_a_plan_created_by_file_runs_to_completion_and_says_so_exit_0(
    db, fleet, personas, eager, tmp_path, django_capture_on_commit_callbacks
):
    name = next(c.name for c in fleet.fleet.clusters if eligible_clean(c) and not c.private)
    text = f"""\
        name: one by file
        names: [{name}]
        wave_spec: "100%"
        soak_minutes: 0
        respect_maintenance_windows: false
    """
    with django_capture_on_commit_callbacks(execute=True):
        assert create(tmp_path, text, "--submit").status == 0
    plan = RolloutPlan.objects.get()
    actions.approve_wave(plan.waves.get(), acting_user=personas["approver"], comment="go")
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(600):
            run_tick()
            plan.refresh_from_db()
            if plan.status not in (PlanStatus.SUBMITTED, PlanStatus.RUNNING):
                break

    ran = run("plan_status", "one by file", "--json")

    assert ran.status == 0, ran.out
    said = ran.json()
    assert (said["status"], said["finished"]) == ("completed", True)
    assert said["outcome"] == {"headline": "Completed", "tone": "ok", "detail": "1 cluster enabled"}
    assert said["waves"][0]["progress"]["done"] == 1


# --- as a script runs them -----------------------------------------------------------------
# (A database of its own, which its processes see: not the test database the tests above get
# through `personas` and `inventory`.)


def test_real_processes_exit_2_3_4_and_5(isolated_db, tmp_path):
    make_cluster(name="aks-canary-0", ring="canary", tags={"ring": "canary"})
    make_user("operator", username="olga")
    make_user("viewer", username="vera")
    good, bad = plan_file(tmp_path, GOOD), str(tmp_path / "bad.yaml")
    (tmp_path / "bad.yaml").write_text(GOOD.replace('"1, 100%"', '"1, 50%"'))

    invalid = manage(isolated_db.url, "plan_create", "--from-file", bad, "--as", "olga")
    refused = manage(isolated_db.url, "plan_create", "--from-file", good, "--as", "vera", "--json")
    created = manage(isolated_db.url, "plan_create", "--from-file", good, "--as", "olga")
    draft = manage(isolated_db.url, "plan_status", "canary first", "--json")
    missing = manage(isolated_db.url, "plan_status", "no such plan", "--json")

    assert invalid.returncode == 2
    assert f"{bad}, line 5, wave_spec: The last wave is 50%" in invalid.stderr
    assert refused.returncode == 3
    assert document(refused)["code"] == "forbidden"
    assert "operator or admin role" in refused.stderr
    assert created.returncode == 0, created.stderr
    assert "created as a draft" in created.stdout
    assert draft.returncode == 5
    assert document(draft)["status"] == "draft"
    assert missing.returncode == 4
    assert document(missing) == {
        "code": "not_found",
        "message": "There is no plan with the id or the exact name 'no such plan'.",
        "field": "PLAN",
    }
    assert "There is no plan" in missing.stderr
