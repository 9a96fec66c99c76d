"""Clusters over the API: the cluster list page's query string selects the same clusters in the
same order, a bad value is refused with the page's words, and one cluster comes with its
preflight and its timeline as its page shows them."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from fleet.choices import ScanStatus
from tests.api.helpers import Api, token_for
from tests.factories import make_cluster, make_scan, make_subscription, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(db):
    """Eleven clusters across two subscriptions, three regions and rings, two versions, both
    modes, every preflight result, one removed: enough ties for every sort."""
    prod, dev = make_subscription(name="prod"), make_subscription(name="dev")
    made = [
        make_cluster(name="web-1", subscription=prod, ring="canary", location="westeurope"),
        make_cluster(name="web-2", subscription=prod, ring="canary", location="eastus"),
        make_cluster(name="web-3", subscription=prod, ring="broad", location="westeurope",
                     acceleration_mode="BpfVeth"),
        make_cluster(name="api-1", subscription=dev, ring="broad", location="eastus",
                     kubernetes_version="1.31.4"),
        make_cluster(name="api-2", subscription=dev, ring="", location="eastus"),
        make_cluster(name="api-3", subscription=dev, ring="broad", location="northeurope",
                     kubernetes_version="1.31.9"),
        make_cluster(name="db-1", subscription=prod, ring="", location="westeurope"),
        make_cluster(name="db-2", subscription=dev, ring="canary", location="northeurope",
                     acns_enabled=False),
        make_cluster(name="db-3", subscription=prod, ring="broad", location="westeurope"),
        make_cluster(name="web-1", subscription=dev, ring="broad", location="eastus"),
        make_cluster(name="gone", subscription=prod, ring="broad", location="westeurope",
                     removed_at=timezone.now()),
    ]  # fmt: skip
    make_scan(made[0], findings=[{}])
    make_scan(made[1])
    make_scan(made[3], status=ScanStatus.INCOMPLETE)
    make_scan(made[8], status=ScanStatus.ERROR)
    return {"prod": prod, "dev": dev, "clusters": made}


@pytest.fixture
def viewer(personas):
    return Api(token_for(personas["viewer"]))


def every_row(api: Api, query: dict[str, str], limit: int = 2) -> list[dict]:
    """The API's rows for `query`, following `next` a few rows at a time."""
    rows: list[dict] = []
    params = {**query, "limit": str(limit)}
    while True:
        page = api.get("clusters/", **params)
        assert page.status_code == 200, page.json()
        rows += page.json()["results"]
        following = page.json()["next"]
        if following is None:
            return rows
        params = {k: v[0] for k, v in parse_qs(urlsplit(following).query).items()}


QUERIES = [
    {},
    {"q": "WEB"},
    {"region": "eastus"},
    {"ring": "canary"},
    {"ring": "(none)"},
    {"version": "1.31"},
    {"eligibility": "blocked"},
    {"eligibility": "eligible", "sort": "-region"},
    {"mode": "BpfVeth"},
    {"preflight": "blocked"},
    {"preflight": "never"},
    {"removed": "on"},
    {"removed": "1", "sort": "-name"},
    {"sort": "ring"},
    {"sort": "-ring"},
    {"sort": "eligibility"},
    {"sort": "-eligibility"},
    {"sort": "version"},
    {"sort": "-subscription"},
    {"sort": "region", "q": "1"},
]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: "&".join(f"{k}={v}" for k, v in q.items()))
def test_the_list_selects_the_same_clusters_in_the_same_order_as_the_page(
    fleet, viewer, client_as, query
):
    page = client_as("viewer").get("/clusters/", {**query, "per_page": "200"})
    on_page = [(row["name"], row["pk"]) for row in page.context["rows"]]

    rows = every_row(viewer, query)

    assert [(row["name"], row["id"]) for row in rows] == on_page
    assert on_page  # every query above lists some cluster


def test_a_subscription_is_chosen_by_its_id_as_on_the_page(fleet, viewer, client_as):
    dev = fleet["dev"].pk
    page = client_as("viewer").get("/clusters/", {"subscription": dev, "sort": "-version"})
    rows = every_row(viewer, {"subscription": str(dev), "sort": "-version"}, limit=3)

    assert [r["id"] for r in rows] == [row["pk"] for row in page.context["rows"]]
    assert {r["subscription"]["name"] for r in rows} == {"dev"}


def test_previous_leads_back_to_the_page_before(fleet, viewer):
    first = viewer.get("clusters/", sort="ring", limit="3").json()
    second = viewer.client.get(first["next"], **viewer.headers).json()
    back = viewer.client.get(second["previous"], **viewer.headers).json()

    assert [r["id"] for r in back["results"]] == [r["id"] for r in first["results"]]
    assert first["previous"] is None


def test_a_row_says_what_the_list_shows_and_links_to_the_page(fleet, viewer, settings):
    settings.WAVEGATE_PUBLIC_URL = "https://wavegate.example.com/"
    blocked = fleet["clusters"][0]
    rows = {r["id"]: r for r in every_row(viewer, {"removed": "true"}, limit=100)}

    row = rows[blocked.pk]
    assert row["name"] == "web-1"
    assert row["subscription"] == {
        "id": fleet["prod"].pk,
        "subscription_id": fleet["prod"].subscription_id,
        "name": "prod",
    }
    assert row["ring"] == "canary"
    assert row["location"] == "westeurope"
    assert row["kubernetes_version"] == "1.33.2"
    assert row["acceleration_mode"] == "None"
    assert row["eligible"] is True
    assert row["eligibility_reasons"] == []
    assert row["preflight"]["status"] == "blocked"
    assert row["preflight"]["label"] == "Blocked by rules"
    assert row["preflight"]["finished_at"] is not None
    assert row["removed"] is False
    assert row["url"] == f"https://wavegate.example.com/clusters/{blocked.pk}/"
    old = rows[fleet["clusters"][3].pk]
    assert old["eligible"] is False
    assert "1.33" in old["eligibility_reasons"][0]["reason"]
    assert rows[fleet["clusters"][4].pk]["preflight"] is None
    assert rows[fleet["clusters"][10].pk]["removed"] is True


@pytest.mark.parametrize(
    ("query", "field", "code", "message"),
    [
        ({"region": "mars"}, "region", "invalid_choice",
         "There is no region “mars” in the inventory."),
        ({"sort": "colour"}, "sort", "invalid_choice", "The list cannot be sorted by “colour”."),
        ({"subscription": "999999"}, "subscription", "invalid_choice",
         "There is no subscription “999999”"),
        ({"eligibility": "maybe"}, "eligibility", "invalid_choice",
         "Eligibility is “eligible” or “blocked”"),
        ({"preflight": "queued"}, "preflight", "invalid_choice",
         "There is no preflight result “queued”."),
        ({"removed": "perhaps"}, "removed", "invalid_choice", "“true” or “false”"),
        ({"q": "x" * 101}, "q", "max_length", "Search for at most 100 characters."),
        ({"regoin": "eastus"}, "regoin", "invalid", "Unknown query parameter(s): regoin."),
    ],
)  # fmt: skip
def test_a_value_the_page_would_ignore_is_refused_with_its_words(
    fleet, viewer, query, field, code, message
):
    refused = viewer.get("clusters/", **query)

    assert refused.status_code == 400
    body = refused.json()
    assert body["code"] == code
    assert body["field"] == field
    assert message in body["message"]
    assert body["message"].startswith(f"{field}: ")


def test_a_tampered_cursor_is_refused_not_an_error(fleet, viewer):
    refused = viewer.get("clusters/", cursor="cD1bIngiLCAieCJd")  # p=["x", "x"]

    assert refused.status_code == 400
    assert refused.json()["field"] == "cursor"


def test_one_cluster_comes_with_its_preflight_by_origin(viewer, personas):
    cluster = make_cluster(name="aks-blocked", tags={"ring": "broad", "team": "payments"})
    make_scan(cluster, status=ScanStatus.CLEAN, latest=False)
    make_scan(
        cluster,
        findings=[
            {"node": "aks-pool1-0"},
            {"node": "aks-pool1-1"},
            {"node": "aks-pool1-1", "rule": "-A DOCKER-USER -j DROP"},
            {"origin": "Calico", "hint": "Remove Calico.", "chain": "cali-INPUT",
             "rule": "-A cali-INPUT -j ACCEPT"},
        ],
    )  # fmt: skip

    found = viewer.get(f"clusters/{cluster.pk}/")

    assert found.status_code == 200, found.json()
    body = found.json()
    assert body["name"] == "aks-blocked"
    assert body["tags"]["team"] == "payments"
    assert body["node_pools"][0]["name"] == "pool1"
    assert body["maintenance"]  # in sentences, as on the page
    section = body["preflight_section"]
    assert section["latest"]["status"] == "blocked"
    assert section["latest"]["finding_count"] == 4
    assert section["finding_count"] == 4
    assert section["open_scan"] is None
    assert [s["status"] for s in section["history"]] == ["blocked", "clean"]
    assert section["can_scan"] is False  # a viewer may not press Scan now
    docker, calico = section["origins"]
    assert (docker["origin"], docker["rules"], docker["nodes"]) == ("Docker", 3, 2)
    assert docker["hint"].startswith("A Docker Engine on the node")
    assert [b["nodes"] for b in docker["blocks"]] == [["aks-pool1-0"], ["aks-pool1-1"]]
    assert "-A DOCKER-USER -j DROP" in docker["blocks"][1]["text"]
    assert (calico["origin"], calico["rules"]) == ("Calico", 1)
    assert section["latest"]["findings_url"].endswith(
        f"/clusters/{cluster.pk}/preflight/{section['latest']['id']}.txt"
    )
    operator = Api(token_for(personas["operator"]))
    assert operator.get(f"clusters/{cluster.pk}/").json()["preflight_section"]["can_scan"] is True


def test_an_unknown_cluster_is_404_json(viewer):
    missing = viewer.get("clusters/999999/")

    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


def test_the_timeline_shows_scans_to_everyone_and_audit_events_to_auditors(personas):
    cluster = make_cluster(name="aks-story")
    make_scan(cluster, findings=[{}, {}])
    Api(token_for(personas["operator"])).post(f"clusters/{cluster.pk}/scan/")
    viewer = Api(token_for(personas["viewer"]))
    auditor = Api(token_for(personas["auditor"]))

    seen = viewer.get(f"clusters/{cluster.pk}/timeline/").json()
    audited = auditor.get(f"clusters/{cluster.pk}/timeline/").json()

    assert [e["kind"] for e in seen["results"]] == ["scan", "scan"]
    assert [e["scan"]["status"] for e in seen["results"]] == ["queued", "blocked"]
    # As the scan endpoints say: none while open, the blocking rules once finished.
    assert [e["scan"]["finding_count"] for e in seen["results"]] == [None, 2]
    assert seen["event_pull"] is None
    kinds = [e["kind"] for e in audited["results"]]
    assert "audit" in kinds
    step = next(e["audit"] for e in audited["results"] if e["kind"] == "audit")
    assert step["action"] == "preflight.scan_requested"
    assert step["actor"] == "operator-user"
    assert step["url"].endswith(f"/audit/events/{step['seq']}/")


def test_the_timeline_pages(personas):
    cluster = make_cluster(name="aks-pages")
    for _ in range(3):
        make_scan(cluster)
    viewer = Api(token_for(personas["viewer"]))

    first = viewer.get(f"clusters/{cluster.pk}/timeline/", per_page="2").json()
    second = viewer.client.get(first["next"], **viewer.headers).json()

    assert len(first["results"]) == 2
    assert len(second["results"]) == 1
    assert second["next"] is None
    assert second["previous"] is not None
    ids = [e["scan"]["id"] for e in first["results"] + second["results"]]
    assert len(set(ids)) == 3
    too_deep = viewer.get(f"clusters/{cluster.pk}/timeline/", page="11", per_page="100")
    assert too_deep.status_code == 400
    assert too_deep.json()["field"] == "page"


def test_someone_without_a_role_may_not_see_the_fleet(db):
    nobody = make_user("viewer", username="nobody")
    nobody.groups.clear()
    refused = Api(token_for(nobody)).get("clusters/")

    assert refused.status_code == 403
    assert refused.json()["message"] == "Seeing the fleet needs a Wavegate role."


def test_the_list_and_a_cluster_cost_the_same_queries_however_many_there_are(viewer):
    def queries(path: str, **params: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert viewer.get(path, **params).status_code == 200
        return len(captured)

    first = make_cluster(name="aks-0")
    make_scan(first, findings=[{}])
    viewer.get("clusters/")  # the token's first use, and the filters' choices, once
    few = queries("clusters/", sort="ring"), queries(f"clusters/{first.pk}/")
    for n in range(1, 8):
        make_scan(make_cluster(name=f"aks-{n}"), findings=[{"node": f"node-{n}"}])
        make_scan(first, findings=[{"node": f"node-{n}"}, {"origin": f"origin-{n}"}])

    many = queries("clusters/", sort="ring"), queries(f"clusters/{first.pk}/")

    assert many == few
