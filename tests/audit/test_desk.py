"""The auditor's desk: filters, keyset pages, search, links and one event's page."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

import audit
from audit.filters import Filters
from audit.models import AuditEvent
from tests.factories import make_cluster, make_plan

pytestmark = pytest.mark.django_db


def seqs_on(page) -> list[int]:
    assert page.status_code == 200, page.content[:500]
    return [int(n) for n in re.findall(r'aria-label="Event (\d+)"', page.content.decode())]


@pytest.fixture
def desk(client_as):
    return client_as("auditor")


def test_filters_by_actor_group_outcome_cluster_and_plan(desk, personas):
    cluster = make_cluster(name="aks-filter-me")
    plan = make_plan(personas["operator"], name="plan-filter-me")
    audit.record("cluster.changed", obj=cluster, acting_user=personas["operator"])
    refused = audit.record(
        "rollout.decision_refused",
        object_type="rollout.rolloutplan",
        object_id=str(plan.pk),
        acting_user=personas["approver"],
        after={"refusal": "You created this plan: another approver must decide."},
    )
    other = audit.record("user.signed_in", acting_user=personas["viewer"])

    by_actor = seqs_on(desk.get("/audit/", {"actor": "approver-user"}))
    assert refused.seq in by_actor
    assert other.seq not in by_actor
    assert all(e.actor_name == "approver-user" for e in AuditEvent.objects.filter(seq__in=by_actor))
    assert seqs_on(desk.get("/audit/", {"outcome": "refused"}))[0] == refused.seq
    by_cluster = seqs_on(desk.get("/audit/", {"cluster": cluster.pk}))
    assert by_cluster
    assert set(
        AuditEvent.objects.filter(seq__in=by_cluster).values_list("cluster_id", flat=True)
    ) == {cluster.pk}
    assert refused.seq in seqs_on(desk.get("/audit/", {"plan": plan.pk}))
    access = seqs_on(desk.get("/audit/", {"category": "access"}))
    assert other.seq in access
    assert refused.seq not in access


def test_searches_labels_and_comments(desk, personas):
    hit = audit.record(
        "rollout.wave_approved",
        object_type="rollout.wave",
        object_id="1",
        acting_user=personas["approver"],
        after={"comment": "Checked the canary dashboards with Priya"},
    )
    audit.record("rollout.wave_approved", object_type="rollout.wave", after={"comment": "fine"})

    assert seqs_on(desk.get("/audit/", {"q": "priya"})) == [hit.seq]
    assert seqs_on(desk.get("/audit/", {"q": "nobody-wrote-this"})) == []


def test_keyset_pages_walk_older_and_back_newer_without_gaps(desk):
    for n in range(120):
        audit.record("cluster.changed", object_id=str(n), after={"n": n})
    newest = seqs_on(desk.get("/audit/", {"action": "cluster.changed"}))
    assert len(newest) == 50
    assert newest == sorted(newest, reverse=True)

    first = desk.get("/audit/", {"action": "cluster.changed"}).content.decode()
    older_link = re.search(r'href="\?([^"]+)" data-testid="older"', first).group(1)
    older = seqs_on(desk.get("/audit/?" + older_link.replace("&amp;", "&")))
    assert older[0] == newest[-1] - 1
    assert len(older) == 50

    second = desk.get("/audit/?" + older_link.replace("&amp;", "&")).content.decode()
    newer_link = re.search(r'href="\?([^"]+)" data-testid="newer"', second).group(1)
    assert seqs_on(desk.get("/audit/?" + newer_link.replace("&amp;", "&"))) == newest


def test_bad_filters_say_what_is_wrong_and_never_fail(desk):
    audit.record("cluster.changed")
    for query, message in [
        ({"cluster": "abc"}, "Enter a whole number"),
        ({"since": "yesterday"}, "Enter a valid date/time"),
        ({"since": "2026-12-02", "until": "2026-12-01"}, "is after"),
        ({"outcome": "maybe"}, "Select a valid choice"),
        ({"q": "x" * 500}, "at most 200 characters"),
        ({"before": "not-a-number"}, None),
        ({"before": "²"}, None),
        ({"after": "١٢"}, None),
    ]:
        page = desk.get("/audit/", query)
        assert page.status_code == 200, query
        if message:
            assert message in page.content.decode(), query


def test_a_date_alone_means_the_whole_day(desk):
    event = audit.record("cluster.changed")
    today = timezone.now().date().isoformat()
    assert event.seq in seqs_on(desk.get("/audit/", {"since": today, "until": today}))
    yesterday = (timezone.now() - timedelta(days=1)).date().isoformat()
    assert event.seq not in seqs_on(desk.get("/audit/", {"until": yesterday}))


def test_every_object_is_a_link(desk, personas):
    cluster = make_cluster(name="aks-linked")
    plan = make_plan(personas["operator"], name="plan-linked")
    audit.record(
        "rollout.target_done",
        object_type="fleet.cluster",
        object_id=str(cluster.pk),
        object_label=cluster.name,
        cluster_id=cluster.pk,
        plan_id=plan.pk,
    )
    text = desk.get("/audit/").content.decode()
    assert f'href="/clusters/{cluster.pk}/"' in text
    assert f'href="/plans/{plan.pk}/"' in text
    assert 'href="?actor=system"' in text


def test_an_events_page_shows_the_diff_the_proof_and_who(desk, personas):
    event = audit.record(
        "cluster.changed",
        acting_user=personas["operator"],
        object_type="fleet.cluster",
        object_id="9",
        object_label="aks-diff",
        before={"mode": "None", "version": "1.33"},
        after={"mode": "BpfVeth", "version": "1.33"},
    )
    page = desk.get(f"/audit/events/{event.seq}/")
    text = page.content.decode()

    assert page.status_code == 200
    assert "operator-user" in text
    rows = re.findall(r'<tr( class="changed")?>\s*<th scope="row">(\w+)', text)
    assert ("changed", "mode") in [(bool(c) and "changed", n) for c, n in rows]
    assert (False, "version") in [(bool(c), n) for c, n in rows]
    assert event.hash in text
    assert event.prev_hash in text
    assert "matches its content" in text
    assert "not yet covered by a signed checkpoint" in text
    assert desk.get("/audit/events/999999999/").status_code == 404


def test_people_without_the_auditor_role_cannot_read_it(client_as):
    event = audit.record("cluster.changed")
    for role in ("viewer", "operator", "approver"):
        assert client_as(role).get("/audit/").status_code == 403
        assert client_as(role).get(f"/audit/events/{event.seq}/").status_code == 403


def test_the_search_reads_the_full_text_index():
    """The page's search expression and migration 0007's index must stay the same expression,
    or a search at a million events reads every row."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table would be read whole
    plan = Filters({"q": "priya"}).apply()[:51].explain()

    assert "audit_search_idx" in plan


def test_the_export_follows_the_filter_and_is_itself_recorded(desk, personas):
    wanted = audit.record("rollout.wave_approved", acting_user=personas["approver"])
    audit.record("cluster.changed")

    response = desk.get("/audit/export.jsonl", {"actor": "approver-user"})
    lines = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="wavegate-audit-')
    assert [line["seq"] for line in lines if line["record"] == "event"] == [wanted.seq]
    assert lines[0]["filter"] == {"actor": "approver-user"}
    exported = AuditEvent.objects.get(action="audit.exported")
    assert exported.actor_name == "auditor-user"
    assert exported.after == {"format": "jsonl", "filter": {"actor": "approver-user"}}


def test_an_export_with_a_bad_filter_goes_back_to_the_page_that_says_why(desk):
    response = desk.get("/audit/export.csv", {"cluster": "abc"}, follow=True)

    assert "Enter a whole number" in response.content.decode()
    assert not AuditEvent.objects.filter(action="audit.exported").exists()
    assert desk.get("/audit/export.xml").status_code == 404


def test_a_search_pages_the_same_whether_its_matches_are_near_or_far(desk, monkeypatch):
    """Searches look in the newest stretch of the log first: the pages must not change."""
    monkeypatch.setattr("audit.filters.SEARCH_STRETCHES", (30, 90))
    old = [audit.record("cluster.changed", after={"comment": f"ticket {n}"}) for n in range(40)]
    for n in range(100):
        audit.record("cluster.changed", after={"n": n})
    recent = [audit.record("cluster.changed", after={"comment": f"ticket r{n}"}) for n in range(30)]

    first = seqs_on(desk.get("/audit/", {"q": "ticket"}))
    text = desk.get("/audit/", {"q": "ticket"}).content.decode()
    older_link = re.search(r'href="\?([^"]+)" data-testid="older"', text).group(1)
    second = seqs_on(desk.get("/audit/?" + older_link.replace("&amp;", "&")))

    everything = [e.seq for e in reversed(old + recent)]
    assert first == everything[:50]
    assert second == everything[50:]
