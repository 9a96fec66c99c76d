"""Every page, read as an admin over a small fleet with plans in several states, for the slips a
reader notices: a number before the wrong plural ("1 clusters", "2 wave") and a badge whose
text is no state Wavegate knows ("Rejectd"). The pages are those of tests/test_url_access.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from types import ModuleType

import pytest
from django.db import models, transaction
from django.template import Context, Template
from django.urls import reverse

import audit
from accounts import choices as account_choices
from accounts.wording import counted
from audit import kinds as audit_kinds
from fleet import choices as fleet_choices
from preflight import choices as preflight_choices
from rollout import actions, outcomes
from rollout import choices as rollout_choices
from rollout.choices import PlanStatus, TargetStatus, WaveStatus
from rollout.models import RolloutPlan
from tests.factories import make_cluster, make_scan, plan_form, submitted_plan
from tests.test_url_access import ACCESS, is_api

pytestmark = pytest.mark.django_db

NOUNS = ["cluster", "wave", "node", "plan", "event", "scan", "target", "rule", "pool"]
NOUNS += ["finding", "approval", "minute", "hour", "second", "day"]
# Words that may stand between the number and its noun: "3 more clusters", "3 Linux nodes".
BETWEEN = r"(?:(?:more|Linux|blocking|audit|node)\s+)?"
MISCOUNT = re.compile(
    rf"(?<![\w.#/:-])(\d+)\s+{BETWEEN}({'|'.join(NOUNS)})(s?)(?![\w'\u2019-])", re.IGNORECASE
)
# Elements after which the text does not run on (a table cell, a list item): "1" in one cell
# and "clusters" in the next are not "1 clusters".
BREAKS = {"td", "th", "tr", "li", "p", "div", "dt", "dd", "option", "br", "summary", "section"}
BREAKS |= {"h1", "h2", "h3", "h4", "table", "ul", "ol"}


def choices_classes() -> list[type[models.Choices]]:
    modules: list[ModuleType] = [
        account_choices,
        audit_kinds,
        fleet_choices,
        preflight_choices,
        rollout_choices,
    ]
    return [
        found
        for module in modules
        for found in vars(module).values()
        if isinstance(found, type) and issubclass(found, models.Choices)
    ]


def state_labels() -> frozenset[str]:
    """Every label of every choices class of the apps, and the outcomes' headlines."""
    labels = {str(label) for kind in choices_classes() for label in kind.labels}
    return frozenset(labels) | outcomes.HEADLINES


def state_values() -> frozenset[str]:
    """What a badge that shows a state carries in its class: "done", "reject", "rolled_back"."""
    return frozenset(str(value) for kind in choices_classes() for value in kind.values)


class PageText(HTMLParser):
    """A page's text as a reader meets it (with its titles and labels), and each badge's."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.badges: list[tuple[frozenset[str], str]] = []  # (classes and data-status, text)
        self._skip = 0  # inside <script> or <style>
        self._badge: list[str] | None = None
        self._marks: frozenset[str] = frozenset()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style"}:
            self._skip += 1
        if tag in BREAKS:
            self.chunks.append(" | ")
        found = dict(attrs)
        for said in (found.get("title"), found.get("aria-label"), found.get("placeholder")):
            if said:
                self.chunks.append(f" | {said} | ")
        classes = (found.get("class") or "").split()
        if "badge" in classes:
            self._badge = []
            self._marks = frozenset(classes) | {found.get("data-status") or "badge"}

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style"}:
            self._skip -= 1
        if tag in BREAKS:
            self.chunks.append(" | ")
        if self._badge is not None and tag in {"span", "a"}:
            self.badges.append((self._marks, " ".join("".join(self._badge).split())))
            self._badge = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.chunks.append(data)
        if self._badge is not None:
            self._badge.append(data)


def read(html: str) -> PageText:
    page = PageText()
    page.feed(html)
    return page


def miscounts(text: str) -> list[str]:
    found = []
    for match in MISCOUNT.finditer(text):
        n, plural = int(match.group(1)), bool(match.group(3))
        if plural == (n == 1):
            found.append(match.group(0))
    return found


def unknown_badges(badges: list[tuple[frozenset[str], str]]) -> list[str]:
    """The text of each badge that shows a state (its class or data-status is a state's value)
    but, less a trailing count ("Done 3"), is no state's label nor an outcome's headline."""
    values, labels = state_values(), state_labels()
    return [
        text
        for marks, text in badges
        if marks & values and re.sub(r"\s+\d+$", "", text) not in labels
    ]


@pytest.fixture
def rollouts(personas) -> dict[str, RolloutPlan]:
    """Plans in most of their states, with waves done (enabled, skipped, failed), a rejected
    one, one awaiting a second approval and a roll back, over a fleet of a few clusters."""
    for i in range(7):
        make_cluster(name=f"aks-{i}")
    make_cluster(name="aks-fast", acceleration_mode="BpfVeth")
    make_scan(make_cluster(name="aks-lone"))
    make_cluster(name="aks-free")
    operator, approver = personas["operator"], personas["approver"]
    T = TargetStatus
    done = submitted_plan(
        operator, name="done", wave_spec="1, 2, 100%", selection={"names": ["aks-[0-4]"]}
    )
    for wave in done.waves.all():  # wave 1 enabled, wave 2 skipped, wave 3 one failed
        for n, target in enumerate(wave.targets.order_by("position")):
            state = [T.ENABLED, T.SKIPPED, T.ENABLED if n else T.FAILED][wave.index - 1]
            type(target).objects.filter(pk=target.pk).update(status=state)
        type(wave).objects.filter(pk=wave.pk).update(status=WaveStatus.DONE)
    RolloutPlan.objects.filter(pk=done.pk).update(status=PlanStatus.COMPLETED)
    rejected = submitted_plan(operator, name="rejected", selection={"names": ["aks-5"]})
    actions.reject_wave(rejected.waves.get(), acting_user=approver, comment="not now")
    waiting = submitted_plan(
        operator, name="waiting", selection={"names": ["aks-6"]}, approvals_needed=2
    )
    actions.approve_wave(waiting.waves.get(), acting_user=approver, comment="fine by me")
    back = submitted_plan(operator, name="back", goal="None", wave_spec="100%")
    with transaction.atomic():
        audit.record("test.event")
    return {"done": done, "rejected": rejected, "waiting": waiting, "back": back}


def pages(rollouts: dict[str, RolloutPlan]) -> Iterator[str]:
    """The URL of every page of ACCESS that a GET reads, for each plan and each of its waves."""
    plans = list(rollouts.values())
    cluster = rollouts["done"].targets.order_by("position")[0].cluster
    scan = make_scan(cluster)
    some = {"pk": cluster.pk, "scan_id": scan.pk, "seq": 1, "fmt": "csv"}
    for name, (method, kwargs, _) in sorted(ACCESS.items()):
        if method != "GET":
            continue
        if is_api(name):  # JSON, not a page
            continue
        if not name.startswith("rollout:") or "pk" not in kwargs:
            yield reverse(name, kwargs={k: some[k] for k in kwargs})
            continue
        for plan in plans:
            if "index" not in kwargs:
                yield reverse(name, kwargs={"pk": plan.pk})
                continue
            for wave in plan.waves.all():
                yield reverse(name, kwargs={"pk": plan.pk, "index": wave.index})


def slips_on(html: str) -> list[str]:
    page = read(html)
    return miscounts("".join(page.chunks)) + unknown_badges(page.badges)


def test_no_page_says_a_number_with_the_wrong_plural_or_an_unknown_state(client_as, rollouts):
    client = client_as("admin")
    slips: dict[str, list[str]] = {}
    read_pages = 0

    for url in pages(rollouts):
        response = client.get(url, follow=True)
        if not response["Content-Type"].startswith("text/html"):
            continue  # the CSV export, the evidence pack, the health check
        assert response.status_code == 200, url
        read_pages += 1
        if found := slips_on(response.content.decode()):
            slips[url] = found

    assert slips == {}, "\n".join(f"{u}: {sorted(set(f))}" for u, f in slips.items())
    assert read_pages > 20


def test_the_plan_preview_counts_its_clusters_in_a_refused_wave_spec(client_as, rollouts):
    """The preview's refusal of waves that shrink names the clusters of the smaller one: the
    "(1 clusters)" of issue 17."""
    form = plan_form(wave_spec="2, 1, 100%")
    form["names"] = "aks-lone\naks-free"

    html = client_as("admin").post(reverse("rollout:plan_preview"), form).content.decode()

    assert "Wave sizes are cumulative: 1 (1 cluster) is fewer than the 2" in html
    assert slips_on(html) == []


def test_the_scan_finds_the_slips_it_is_for():
    """The checks themselves, on the slips issue 17 found, so that they cannot pass by missing
    them: a page saying "(1 clusters)" or "Rejectd" fails the test above."""
    page = read(
        "<p>Page 1 of 1 (1 clusters)</p><p>2 wave and 1 more nodes</p><td>1</td><td>clusters</td>"
        "<p>1 cluster's pools, 2 cluster-wide rules, 3 Linux nodes</p>"
        '<span class="badge reject">Rejectd</span><span class="badge done">Done 3</span>'
    )

    assert miscounts("".join(page.chunks)) == ["1 clusters", "2 wave", "1 more nodes"]
    assert unknown_badges(page.badges) == ["Rejectd"]


def test_a_count_says_its_noun_in_the_plural_unless_it_is_one():
    render = Template('{{ 1|count:"cluster" }}; {{ 2|count:"cluster" }}; {{ 0|count:"policy" }}')

    assert render.render(Context()) == "1 cluster; 2 clusters; 0 policies"
    assert counted(1, "more node") == "1 more node"
    assert counted(3, "child,children") == "3 children"
