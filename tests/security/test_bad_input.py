"""Bad input never reaches a 500 (issue 14 §6): control characters in any field or query
parameter are refused with a message before a view runs, a malformed id in the preview is no
plan, and arbitrary text posted to every page answers without a 5xx and without a partial write.
"""

from __future__ import annotations

import re

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from rollout import actions, reconcile
from rollout.choices import TargetStatus
from rollout.models import RolloutPlan, RolloutTarget
from tests.factories import make_cluster, make_user, plan_form, submitted_plan
from tests.rollout.stepping import Sent
from tests.test_url_access import ACCESS, is_api

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan(personas):
    for i in range(3):
        make_cluster(name=f"aks-{i}")
    creator = make_user("operator", username="plan-creator")
    return submitted_plan(creator, name="p", wave_spec="100%")


def test_a_nul_in_a_comment_is_refused_with_a_message_and_changes_nothing(client_as, plan):
    target = plan.targets.first()
    RolloutTarget.objects.filter(pk=target.pk).update(status=TargetStatus.FAILED)
    client = client_as("operator")
    events = AuditEvent.objects.count()

    response = client.post(
        reverse("rollout:target_skip", kwargs={"pk": plan.pk, "target_id": target.pk}),
        {"comment": "decommissioned\x00 by ops"},
    )

    assert response.status_code == 400
    html = response.content.decode()
    assert "The field &#x27;comment&#x27; holds a control character (U+0000)" in html
    assert "Nothing was changed" in html
    target.refresh_from_db()
    assert target.status == TargetStatus.FAILED
    assert AuditEvent.objects.count() == events


def test_a_control_character_in_a_live_preview_is_said_in_place(client_as, plan):
    response = client_as("operator").post(
        reverse("rollout:plan_preview"),
        plan_form(names="aks-\x1b[31m*"),
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200  # htmx swaps it into the preview
    assert 'data-testid="bad-input"' in response.content.decode()
    assert "U+001B" in response.content.decode()


@pytest.mark.parametrize("plan_id", ["²", "99999999999999999999999", "-1", "1e3", "ab"])
def test_a_malformed_plan_id_in_the_preview_previews_a_new_plan(client_as, plan, plan_id):
    response = client_as("operator").post(
        reverse("rollout:plan_preview"), {**plan_form(names="aks-*"), "plan": plan_id}
    )

    assert response.status_code == 200
    # As a new plan: plan p's clusters are held by p.
    assert "in plan &#x27;p&#x27;, which is still active" in response.content.decode()


def test_the_preview_caps_name_patterns_and_says_so(client_as, plan, settings):
    settings.WAVEGATE_PLAN_MAX_GLOBS = 2
    settings.WAVEGATE_PLAN_MAX_PATTERNS = 5
    settings.WAVEGATE_PLAN_MAX_PATTERN_LENGTH = 20
    client = client_as("operator")

    def preview(names: str) -> str:
        form = plan_form(names=names)
        return client.post(reverse("rollout:plan_preview"), form).content.decode()

    assert "3 lines hold a wildcard (* ? [): a plan takes at most 2" in preview("a*\nb*\nc?")
    assert "6 name patterns: a plan takes at most 5" in preview("\n".join("abcdef"))
    assert "Pattern 2 is 21 characters long: at most 20" in preview("aks-0\n" + "x" * 21)
    assert "aks-2</strong>: in plan" in preview("aks-0\naks-1\naks-*")  # within the caps


# --- arbitrary text to every page ------------------------------------------------------------
FIELDS = re.compile(r'name="([^"]+)"')
FORMS = re.compile(r'<form[^>]*?(?:action="([^"]*)")?[^>]*>(.*?)</form>', re.DOTALL)
ODD = [
    "",
    "\x00",
    "a\x00b",
    "\x1b[2J",
    "\u202e",
    "-1",
    "0",
    "²",
    "99999999999999999999999",
    "1e308",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "x" * 5000,
    "*\n" * 300,
]
text = st.one_of(
    st.sampled_from(ODD),
    st.sampled_from(ODD).map(lambda odd: f"a reason {odd} here"),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=300),
)


def _url(name: str, made: dict) -> str:
    """The URL over objects made once for every page (`made`: each maker's object)."""
    kwargs = {}
    for key, value in ACCESS[name][1].items():
        if callable(value):
            if value not in made:
                made[value] = value()
            value = made[value]
        kwargs[key] = value
    return reverse(name, kwargs=kwargs)


# Signing out would end the session under the test; the health check reads no input and
# answers 503 by design while no worker runs. The API takes JSON, not forms: its input is
# generated from its schema instead (tests/api/test_schema_fuzz.py).
SKIPPED = {"accounts:logout", "healthz", *(name for name in ACCESS if is_api(name))}


@pytest.fixture
def pages(personas):
    """Every URL but those SKIPPED, resolved over
    existing objects, with the field names its forms and the site's forms use."""
    made: dict = {}
    urls = {name: (ACCESS[name][0], _url(name, made)) for name in ACCESS if name not in SKIPPED}
    admin = Client()
    admin.force_login(personas["admin"])
    everywhere = {"comment", "reason", "next", "plan", "plan_hash", "page", "state", "username"}
    by_action: dict[str, set[str]] = {}
    for method, url in urls.values():
        response = admin.get(url) if method == "GET" else None
        if response is None or response.streaming:
            continue
        html = response.content.decode()
        everywhere |= set(FIELDS.findall(html))
        by_action.setdefault(url, set()).update(FIELDS.findall(html))  # its own query fields
        for action, form in FORMS.findall(html):
            by_action.setdefault(action or url, set()).update(FIELDS.findall(form))
    everywhere -= {"csrfmiddlewaretoken"}
    # Each URL gets the fields its forms send (most of the time) or any field of the site.
    return {
        name: (method, url, sorted((by_action.get(url) or everywhere) - {"csrfmiddlewaretoken"}))
        for name, (method, url) in urls.items()
    }, sorted(everywhere)


@pytest.mark.parametrize("name", sorted(set(ACCESS) - SKIPPED))
def test_arbitrary_text_in_any_field_never_answers_5xx_or_writes_half(pages, personas, name):
    urls, fields = pages
    method, url, its_fields = urls[name]
    client = Client()

    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        role=st.sampled_from(["operator", "approver", "admin"]),
        own=st.sampled_from([True, True, True, False]),
        data=st.data(),
    )
    def check(role: str, own: bool, data: st.DataObject) -> None:
        sent = data.draw(
            st.dictionaries(st.sampled_from(its_fields if own and its_fields else fields), text,
                            max_size=6)
        )  # fmt: skip
        if client.session.get("role") != role:  # signing in is an audit event of its own
            client.force_login(personas[role])
            client.session["role"] = role
        # Each example starts from the same objects: what one changed is rolled back after it.
        with transaction.atomic():
            events = AuditEvent.objects.count()
            plans = list(RolloutPlan.objects.values_list("pk", "status", "content_hash"))
            response = client.post(url, sent) if method == "POST" else client.get(url, sent)
            assert response.status_code < 500, (name, sent, response.status_code)
            if response.status_code >= 400:  # refused: nothing of it was written
                assert AuditEvent.objects.count() == events or response.status_code == 403
                now = list(RolloutPlan.objects.values_list("pk", "status", "content_hash"))
                assert now == plans
            transaction.set_rollback(True)

    check()


def test_approving_a_wave_of_a_plan_edited_meanwhile_says_what_changed(personas):
    for i in range(2):
        make_cluster(name=f"aks-{i}")
    plan = submitted_plan(personas["operator"], name="raced", wave_spec="100%")
    reconcile.tick(Sent())
    wave = plan.waves.get()  # the approver's page is open on it
    actions.edit_plan(plan, acting_user=make_user("operator", username="other-op"), concurrency=5)

    with pytest.raises(actions.ActionRefused, match="was edited since you read it"):
        actions.approve_wave(wave, acting_user=personas["approver"], comment="looks good")

    refused = AuditEvent.objects.filter(action="rollout.decision_refused").get()
    assert "was edited since you read it" in refused.after["refusal"]
    assert not plan.waves.filter(approvals__isnull=False).exists()
