"""A cluster's story on its page (issue 16): the Kubernetes events Wavegate pulls from it (kept
once per uid however often they are read), its scans, its rollout steps and audit events in one
timeline, newest first; every plan it took part in; and its new mode as soon as a plan enables
or rolls it back, without waiting for a sync. Driven through the real Azure SDK and kubernetes
client against aksim."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from django.urls import reverse

from aksim.fleetfile import Cluster as Spec
from config.celery_app import app as celery_app
from fleet import inventory
from fleet import tasks as fleet_tasks
from fleet.choices import SyncTrigger
from fleet.models import Cluster, ClusterEvent, EventPull
from fleet.sync import run_sync
from rollout import actions, engine
from rollout import tasks as rollout_tasks
from tests.aksim.builders import eligible_clean
from tests.aksim_server import Aksim
from tests.factories import lone_target, make_cluster, make_scan
from tests.rollout.stepping import run_until_settled

pytestmark = pytest.mark.django_db

# kubelet's warning when image garbage collection cannot free space: its event recorder counts
# repeats on one event (same uid), as most components do.
DISK = {
    "reason": "FreeDiskSpaceFailed",
    "message": "Failed to garbage collect required amount of images. Attempted to free "
    "1048576 bytes, but only found 0 bytes eligible to free.",
}


@pytest.fixture
def synced(wavegate_on_aksim: Aksim, settings) -> Aksim:
    """The test fleet in aksim, synced into Wavegate, with quick preflight scans."""
    settings.WAVEGATE_SCAN_POLL_SECONDS = 0.05
    settings.WAVEGATE_SCAN_DEADLINE_SECONDS = 5.0
    assert run_sync(SyncTrigger.COMMAND).status == "succeeded"
    return wavegate_on_aksim


@pytest.fixture
def eager() -> Iterator[None]:
    """Tasks queued run here and now, as a worker would run them."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = before


def clean_clusters(aksim: Aksim) -> list[Spec]:
    return aksim.clusters(lambda c: eligible_clean(c) and not c.private and not c.warnings)


def linux_node(spec: Spec) -> str:
    return next(n.name for n in spec.nodes() if n.linux)


def change(aksim: Aksim, spec: Spec, **what) -> None:
    aksim.admin("POST", f"clusters/{spec.key}/change", what)


def page_of(client, cluster: Cluster) -> str:
    response = client.get(reverse("fleet:cluster", args=[cluster.pk]))
    assert response.status_code == 200
    return response.content.decode()


def section(page: str, name: str) -> str:
    start = page.index(f'data-section="{name}"')
    return page[start : page.index("</section>", start)]


def mode_shown(page: str) -> str:
    return re.search(r"<dt>Acceleration mode</dt><dd>([^<]*)</dd>", page).group(1)


def rows(timeline: str, **attributes: str) -> list[str]:
    """The timeline's rows carrying all of `attributes` (data-<name>="value")."""
    found = re.findall(r"<tr data-kind=[^>]*>", timeline)
    return [row for row in found if all(f'data-{k}="{v}"' in row for k, v in attributes.items())]


def test_iptables_warnings_after_a_plan_enables_a_cluster_show_once_each_and_the_new_mode(
    synced, personas, client_as
):
    spec = clean_clusters(synced)[0]
    node = linux_node(spec)
    # AKS's iptables monitor raises BlockedIPTablesRule on the node at every check once eBPF
    # host routing is on.
    change(synced, spec, warnings={node: ["BlockedIPTablesRule"]})
    cluster = Cluster.objects.get(name=spec.name)
    assert cluster.acceleration_mode == "None"
    target = lone_target(personas["operator"], spec.name)

    assert run_until_settled(target)[-1] == "failed"  # verification saw the warning

    # No sync since the plan ran: the page shows the mode the engine read from Azure.
    page = page_of(client_as("viewer"), cluster)
    assert mode_shown(page) == "BpfVeth"
    # The monitor raises no new event from now on; those it raised stay listed for a while.
    change(synced, spec, warnings={node: []})
    kept = ClusterEvent.objects.filter(cluster=cluster, reason="BlockedIPTablesRule")
    assert fleet_tasks.pull_cluster_events(cluster.pk) == "read"
    first = sorted(kept.values_list("uid", flat=True))
    assert fleet_tasks.pull_cluster_events(cluster.pk) == "read"
    assert fleet_tasks.pull_cluster_events(cluster.pk) == "read"
    uids = sorted(kept.values_list("uid", flat=True))
    assert uids == first  # read three times, each event kept once
    assert uids

    timeline = section(page_of(client_as("viewer"), cluster), "events")
    warned = rows(timeline, kind="kubernetes", reason="BlockedIPTablesRule", object=node)
    assert len(warned) == 1  # one line, however many events the monitor raised
    assert f'data-count="{len(uids)}"' in warned[0]
    assert "iptables rules blocked because EBPF Host Routing is enabled" in timeline
    # The rollout's steps are on it too: started, changed, verified, failed.
    assert rows(timeline, kind="rollout", action="rollout.target_failed")
    assert rows(timeline, kind="rollout", action="rollout.target_change_sent")
    assert rows(timeline, kind="scan")  # the preflight scan the rollout judged it by


def test_a_repeated_event_keeps_its_row_and_counts_up(synced, client_as):
    spec = clean_clusters(synced)[0]
    node = linux_node(spec)
    cluster = Cluster.objects.get(name=spec.name)
    change(synced, spec, events=[{"node": node, **DISK}])

    fleet_tasks.pull_cluster_events(cluster.pk)
    event = ClusterEvent.objects.get(cluster=cluster, reason=DISK["reason"])
    assert event.count == 1
    change(synced, spec, events=[{"node": node, **DISK}])  # kubelet counts it on the same uid
    fleet_tasks.pull_cluster_events(cluster.pk)
    fleet_tasks.pull_cluster_events(cluster.pk)

    again = ClusterEvent.objects.get(cluster=cluster, reason=DISK["reason"])
    assert (again.uid, again.count) == (event.uid, 2)
    assert again.last_seen >= event.last_seen
    timeline = section(page_of(client_as("operator"), cluster), "events")
    [row] = rows(timeline, kind="kubernetes", reason=DISK["reason"])
    assert 'data-count="2"' in row
    assert "2 times" in timeline
    assert "reported by kubelet" in timeline


def test_clusters_a_rollout_is_changing_are_pulled_every_period_the_others_wait_for_beat(
    synced, personas, client_as, eager, settings
):
    settings.WAVEGATE_CLUSTER_EVENTS_IN_FLIGHT_SECONDS = 60.0
    changing, idle = clean_clusters(synced)[:2]
    target = lone_target(personas["operator"], changing.name)
    assert engine.advance(target.pk, go_on=False).status == "preflight"  # in flight
    for spec in (changing, idle):
        change(synced, spec, events=[{"node": linux_node(spec), **DISK}])

    assert rollout_tasks.pull_events_in_flight() == 1
    assert rollout_tasks.pull_events_in_flight() == 0  # pulled within the period already

    shown = Cluster.objects.get(name=changing.name)
    assert rows(section(page_of(client_as("viewer"), shown), "events"), reason=DISK["reason"])
    waiting = Cluster.objects.get(name=idle.name)
    assert not ClusterEvent.objects.filter(cluster=waiting).exists()
    assert "have not been read yet" in section(page_of(client_as("viewer"), waiting), "events")
    # Beat's pull of every cluster reads the idle one, and leaves the one just pulled.
    assert fleet_tasks.pull_events() == Cluster.objects.filter(removed_at__isnull=True).count() - 1
    assert ClusterEvent.objects.filter(cluster=waiting, reason=DISK["reason"]).count() == 1


def test_a_rolled_back_cluster_shows_mode_none_without_a_sync(synced, personas, client_as):
    spec = clean_clusters(synced)[0]
    cluster = Cluster.objects.get(name=spec.name)
    target = lone_target(personas["operator"], spec.name)
    assert run_until_settled(target)[-1] == "enabled"
    assert mode_shown(page_of(client_as("viewer"), cluster)) == "BpfVeth"

    target.refresh_from_db()
    actions.roll_back_target(target, acting_user=personas["operator"], comment="dashboards red")
    assert run_until_settled(target)[-1] == "rolled_back"

    page = page_of(client_as("viewer"), cluster)
    assert mode_shown(page) == "None"
    history = section(page, "rollout-history")
    assert 'data-outcome="rolled_back"' in history
    assert "Rolled back" in history


def test_the_overviews_counts_follow_an_enabled_cluster_without_a_sync(
    synced, personas, django_capture_on_commit_callbacks
):
    spec = clean_clusters(synced)[0]

    def at_bpfveth() -> int:
        return sum(t.count for t in inventory.fleet_counts().by_mode if "BpfVeth" in t.query)

    before = at_bpfveth()  # kept in the cache from now on
    target = lone_target(personas["operator"], spec.name)
    with django_capture_on_commit_callbacks(execute=True):
        assert run_until_settled(target)[-1] == "enabled"

    assert at_bpfveth() == before + 1


def test_a_cluster_whose_events_cannot_be_read_says_why_on_its_page(synced, client_as, settings):
    spec = clean_clusters(synced)[0]
    cluster = Cluster.objects.get(name=spec.name)
    change(synced, spec, events=[{"node": linux_node(spec), **DISK}])
    assert fleet_tasks.pull_cluster_events(cluster.pk) == "read"
    settings.WAVEGATE_SCAN_REQUEST_TIMEOUT_SECONDS = 1.0
    synced.admin("PUT", "faults", {"kubeTimeoutSeconds": 3})
    change(synced, spec, apiDown=True)

    said = fleet_tasks.pull_cluster_events(cluster.pk)  # no exception: the reason is kept

    assert "could not reach the API server" in said or "timed out" in said
    page = page_of(client_as("viewer"), cluster)
    timeline = section(page, "events")
    assert "could not read this cluster's Kubernetes events" in timeline
    assert said in html.unescape(timeline)
    assert "They were last read at" in timeline
    # What was read before stays on the timeline.
    assert rows(timeline, kind="kubernetes", reason=DISK["reason"])

    change(synced, spec, apiDown=False, denyAccess=True)  # Wavegate's role on it was removed
    said = fleet_tasks.pull_cluster_events(cluster.pk)
    assert "Reading the cluster's credentials" in said, said
    assert "Azure refused access" in said
    assert said in html.unescape(section(page_of(client_as("viewer"), cluster), "events"))
    assert EventPull.objects.get(cluster=cluster).error == said


def test_the_rollout_history_lists_each_plan_with_its_outcome_and_a_link(personas, client_as):
    cluster = make_cluster(name="aks-history")
    target = lone_target(personas["operator"], cluster.name, name="canary-first")

    page = page_of(client_as("viewer"), cluster)

    history = section(page, "rollout-history")
    assert f'href="{reverse("rollout:plan", args=[target.plan_id])}"' in history
    assert "canary-first" in history
    assert f'data-plan="{target.plan_id}" data-outcome="pending"' in history
    assert "Not available yet" not in page


def test_a_cluster_in_no_plan_says_so(client_as):
    page = page_of(client_as("viewer"), make_cluster(name="aks-never"))

    assert "No rollout plan has included this cluster yet." in section(page, "rollout-history")
    assert "have not been read yet" in section(page, "events")


def test_audit_events_link_to_their_page_for_auditors_and_rollout_steps_show_to_everyone(
    personas, client_as
):
    cluster = make_cluster(name="aks-told")
    make_scan(cluster)
    target = lone_target(personas["operator"], cluster.name)
    actions.skip_target(target, acting_user=personas["operator"], reason="not this week")

    for role in ("viewer", "auditor"):
        timeline = section(page_of(client_as(role), cluster), "events")
        [skipped] = rows(timeline, kind="rollout", action="rollout.target_skipped")
        seq = re.search(r'data-seq="(\d+)"', skipped).group(1)
        link = reverse("audit:event", kwargs={"seq": seq})
        assert (f'href="{link}"' in timeline) is (role == "auditor")
        assert f'href="{reverse("rollout:plan", args=[target.plan_id])}"' in timeline
        assert len(rows(timeline, kind="scan")) == 1


def test_the_timeline_reloads_on_its_own(client_as):
    cluster = make_cluster(name="aks-live")
    page = page_of(client_as("viewer"), cluster)
    url = reverse("fleet:cluster_timeline", args=[cluster.pk])
    assert f'hx-get="{url}"' in section(page, "events")

    response = client_as("viewer").get(url)

    assert response.status_code == 200
    assert 'data-section="events"' in response.content.decode()
    assert (
        client_as("viewer").get(reverse("fleet:cluster_timeline", args=[999999])).status_code == 404
    )
