"""The node disruption policy (issue 15): the sync reads it from aksim with a preview
api-version, eligibility says when it refuses the change, a read that fails leaves it unknown
without failing the sync, and what Wavegate predicts agrees with what aksim would answer."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse

from aksim.generate import _eligible
from audit.models import AuditEvent
from fleet.choices import SyncStatus, SyncTrigger
from fleet.disruption import Disruption, disruption_verdict
from fleet.maintenance import next_open, window_open
from fleet.models import Cluster
from fleet.sync import run_sync
from tests.aksim.builders import changeable

pytestmark = pytest.mark.django_db

SCHEDULE = "aksManagedNodeOSUpgradeSchedule"


def row(cluster) -> Cluster:
    return Cluster.objects.get(arm_id=cluster.arm_id.lower())


def weekly(day: datetime.date, *, interval: int, start: datetime.date, hours: int = 24) -> dict:
    """A node OS upgrade schedule's ARM properties: every `interval` weeks on `day`'s weekday."""
    return {
        "maintenanceWindow": {
            "schedule": {"weekly": {"intervalWeeks": interval, "dayOfWeek": day.strftime("%A")}},
            "durationHours": hours,
            "utcOffset": "+00:00",
            "startDate": start.isoformat(),
            "startTime": "00:00",
        }
    }


def test_it_reads_every_clusters_policy_and_block_makes_a_cluster_ineligible(wavegate_on_aksim):
    run = run_sync(SyncTrigger.COMMAND)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert run.counts["policies_unread"] == 0
    for cluster in wavegate_on_aksim.fleet.clusters:
        stored = row(cluster)
        assert stored.node_disruption_policy == cluster.node_disruption_policy, cluster.name
        assert stored.node_disruption_checked_at is not None
        fields = {r["field"] for r in stored.eligibility_reasons}
        assert ("node_disruption_policy" in fields) is (cluster.node_disruption_policy == "Block")
        discovered = AuditEvent.objects.get(action="cluster.discovered", object_id=str(stored.pk))
        assert discovered.after["node_disruption_policy"] == cluster.node_disruption_policy
    blocked = wavegate_on_aksim.one(
        lambda c: (
            _eligible(c) and c.power_state == "Running" and c.node_disruption_policy == "Block"
        ),
        "eligible cluster whose policy is Block",
    )
    assert row(blocked).eligible is False


def test_a_policy_changed_in_azure_shows_up_audited_and_changes_eligibility(
    wavegate_on_aksim, settings, client_as
):
    aksim = wavegate_on_aksim
    (cluster,) = changeable(aksim)
    run_sync(SyncTrigger.COMMAND)
    assert row(cluster).eligible
    settings.WAVEGATE_MAINTENANCE_REFRESH_HOURS = 0  # every sync re-reads every cluster
    aksim.admin("POST", f"clusters/{cluster.key}/change", {"nodeDisruptionPolicy": "Block"})

    run = run_sync(SyncTrigger.COMMAND)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    stored = row(cluster)
    assert stored.node_disruption_policy == "Block"
    assert stored.eligible is False
    assert [r["field"] for r in stored.eligibility_reasons] == ["node_disruption_policy"]
    event = AuditEvent.objects.get(action="cluster.changed", object_id=str(stored.pk))
    assert event.before["node_disruption_policy"] == "Allow"
    assert event.after["node_disruption_policy"] == "Block"
    client = client_as("viewer")
    listed = client.get(reverse("fleet:clusters"), {"search": cluster.name}).content.decode()
    assert "refused: node disruption policy Block" in listed
    page = client.get(reverse("fleet:cluster", args=[stored.pk])).content.decode()
    assert 'data-field="node_disruption_policy"' in page
    assert "must set the cluster&#x27;s node disruption policy to Allow" in page

    aksim.admin("POST", f"clusters/{cluster.key}/change", {"nodeDisruptionPolicy": "Allow"})
    run_sync(SyncTrigger.COMMAND)

    stored = row(cluster)
    assert (stored.node_disruption_policy, stored.eligible) == ("Allow", True)


def test_a_policy_that_cannot_be_read_is_unknown_with_why_and_the_sync_succeeds(
    wavegate_on_aksim, client_as
):
    aksim = wavegate_on_aksim
    (cluster,) = changeable(aksim)
    run_sync(SyncTrigger.COMMAND)
    # As every cluster is right after migration 0008: its window read, its policy never.
    Cluster.objects.filter(pk=row(cluster).pk).update(
        node_disruption_policy="", node_disruption_checked_at=None
    )
    aksim.admin("POST", f"clusters/{cluster.key}/change", {"denyAccess": True})

    run = run_sync(SyncTrigger.COMMAND)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert run.counts["policies_unread"] == 1
    stored = row(cluster)
    assert stored.node_disruption_policy == ""
    assert stored.node_disruption_checked_at is not None
    assert "Reading the node disruption policy of" in stored.node_disruption_error
    assert "AuthorizationFailed" in stored.node_disruption_error or "refused access" in (
        stored.node_disruption_error
    )
    assert stored.eligible  # unknown is not a blocker
    verdict = disruption_verdict(
        stored, datetime.datetime.now(datetime.UTC), error=stored.node_disruption_error
    )
    assert verdict.kind == Disruption.UNKNOWN
    assert "could not be read" in verdict.sentence
    event = AuditEvent.objects.get(action="cluster.changed", object_id=str(stored.pk))
    assert "node_disruption_error" in event.after
    page = client_as("viewer").get(reverse("fleet:cluster", args=[stored.pk])).content.decode()
    assert 'data-policy="unknown"' in page
    assert "Wavegate could not read it" in page

    aksim.admin("POST", f"clusters/{cluster.key}/change", {"denyAccess": False})
    Cluster.objects.filter(pk=stored.pk).update(node_disruption_checked_at=None)
    run_sync(SyncTrigger.COMMAND)

    stored = row(cluster)
    assert (stored.node_disruption_policy, stored.node_disruption_error) == ("Allow", "")


@pytest.mark.parametrize("this_week_is_on", [True, False])
def test_what_wavegate_predicts_is_what_aksim_answers(wavegate_on_aksim, settings, this_week_is_on):
    aksim = wavegate_on_aksim
    (cluster,) = changeable(aksim)
    today = datetime.datetime.now(datetime.UTC).date()
    started = today - datetime.timedelta(weeks=0 if this_week_is_on else 1)
    aksim.admin(
        "POST",
        f"clusters/{cluster.key}/change",
        {
            "nodeDisruptionPolicy": "AllowDuringMaintenanceWindow",
            "maintenance": {SCHEDULE: weekly(today, interval=2, start=started)},
        },
    )

    run_sync(SyncTrigger.COMMAND)
    truth = aksim.truth(cluster)
    verdict = disruption_verdict(row(cluster), datetime.datetime.now(datetime.UTC))

    assert row(cluster).maintenance_window["name"] == SCHEDULE
    if this_week_is_on:
        assert truth["refusal"] is None
        assert verdict.kind == Disruption.IN_WINDOW
    else:
        assert truth["refusal"]["code"] == "OperationOutsideNodeDisruptionWindow"
        assert verdict.kind == Disruption.WAITS
        opens = datetime.datetime.combine(today + datetime.timedelta(weeks=1), datetime.time())
        assert verdict.opens_at == opens.replace(tzinfo=datetime.UTC)
        assert f"next opens {opens:%Y-%m-%d} 00:00 UTC" in verdict.sentence


def test_allow_during_windows_without_a_node_os_schedule_is_allowed_at_any_time(
    wavegate_on_aksim,
):
    aksim = wavegate_on_aksim
    (cluster,) = changeable(aksim)
    # Only the `default` configuration, closed now: it does not govern the policy.
    tomorrow = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)).strftime("%A")
    aksim.admin(
        "POST",
        f"clusters/{cluster.key}/change",
        {
            "nodeDisruptionPolicy": "AllowDuringMaintenanceWindow",
            "maintenance": {"default": {"timeInWeek": [{"day": tomorrow, "hourSlots": [3]}]}},
        },
    )

    run_sync(SyncTrigger.COMMAND)

    assert aksim.truth(cluster)["refusal"] is None
    stored = row(cluster)
    assert stored.maintenance_window["name"] == "default"
    verdict = disruption_verdict(stored, datetime.datetime.now(datetime.UTC))
    assert verdict.kind == Disruption.ALLOWED
    assert "no aksManagedNodeOSUpgradeSchedule" in verdict.sentence


# --- next_open, against window_open ---------------------------------------------------------
NOW = datetime.datetime(2026, 12, 4, 10, 0, tzinfo=datetime.UTC)  # a Friday


def stored(properties: dict, name: str = SCHEDULE) -> dict:
    return {"name": name, "properties": properties}


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        # Biweekly from Friday 27 November: 4 December is the off week, 11 December the next.
        (
            stored(weekly(NOW.date(), interval=2, start=datetime.date(2026, 11, 27))),
            datetime.datetime(2026, 12, 11, tzinfo=datetime.UTC),
        ),
        # Open now.
        (stored(weekly(NOW.date(), interval=1, start=datetime.date(2026, 1, 2))), NOW),
        # Not before its start date.
        (
            stored(weekly(NOW.date(), interval=1, start=datetime.date(2026, 12, 20))),
            datetime.datetime(2026, 12, 25, tzinfo=datetime.UTC),
        ),
        # Monday 02:15 at UTC+05:45 with Monday 7 December banned: Monday 14th, local.
        (
            stored(
                {
                    "maintenanceWindow": {
                        "schedule": {"weekly": {"intervalWeeks": 1, "dayOfWeek": "Monday"}},
                        "durationHours": 4,
                        "utcOffset": "+05:45",
                        "startDate": "2026-01-01",
                        "startTime": "02:15",
                        "notAllowedDates": [{"start": "2026-12-07", "end": "2026-12-08"}],
                    }
                }
            ),
            datetime.datetime(2026, 12, 13, 20, 30, tzinfo=datetime.UTC),
        ),
        # The default configuration's hour slots, in UTC.
        (
            stored({"timeInWeek": [{"day": "Sunday", "hourSlots": [1, 2]}]}, "default"),
            datetime.datetime(2026, 12, 6, 1, 0, tzinfo=datetime.UTC),
        ),
        # Past its end date: never again.
        (
            stored(
                {
                    "maintenanceWindow": {
                        **weekly(NOW.date(), interval=1, start=datetime.date(2026, 1, 2))[
                            "maintenanceWindow"
                        ],
                        "endDate": "2026-12-01",
                    }
                }
            ),
            None,
        ),
    ],
)
def test_next_open_is_the_first_moment_window_open_holds(window, expected):
    opens = next_open(window, NOW)

    assert opens == expected
    if opens is not None and opens != NOW:
        assert window_open(window, opens)
        assert not window_open(window, opens - datetime.timedelta(minutes=1))
        assert not window_open(window, NOW)


def test_block_is_refused_whatever_the_window():
    class Facts:
        node_disruption_policy = "Block"
        maintenance_window: dict = {}

    verdict = disruption_verdict(Facts(), NOW)

    assert verdict.refused
    assert "An administrator must set the cluster's node disruption policy to Allow" in (
        verdict.sentence
    )
