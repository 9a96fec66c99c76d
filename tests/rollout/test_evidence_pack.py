"""A plan's evidence pack, downloaded by an auditor after the plan ran against aksim (two waves,
each approved by another approver, one refused attempt): every file is as its manifest says, the
summary names every cluster, approver and comment, the events recompute to their hashes and the
offline verifier accepts them, each cluster's preflight and timeline are there, and
`manage.py evidence_pack` writes the same pack. Other roles are refused; each export is audited.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command

from audit.anchor import make_checkpoint
from audit.chain import event_hash
from audit.export_format import from_json_line
from audit.models import AuditEvent
from rollout import actions
from rollout.choices import PlanStatus, RolloutEvent, WaveStatus
from rollout.evidence import EXPORTED
from rollout.models import RolloutPlan, Wave
from tests.aksim_server import Aksim, clean_fleet, start_aksim
from tests.factories import approved_plan, make_cluster, make_user, submitted_plan
from tests.rollout.stepping import run_tick

pytestmark = pytest.mark.django_db
CLUSTERS = 3


@pytest.fixture(scope="module")
def aksim_server(tmp_path_factory) -> Iterator[Aksim]:
    server = start_aksim(tmp_path_factory.mktemp("aksim-evidence"), clean_fleet(CLUSTERS, 2, 5))
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture
def anchors(tmp_path, settings):
    key = tmp_path / "audit.key"
    key.write_bytes(os.urandom(48).hex().encode())
    settings.WAVEGATE_AUDIT_HMAC_KEY_FILE = str(key)
    settings.WAVEGATE_AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")
    return key


def tick_until(plan: RolloutPlan, condition, what: str, ticks: int = 600) -> None:
    for _ in range(ticks):
        run_tick()
        plan.refresh_from_db()
        if condition():
            return
    raise AssertionError(f"never {what}: {list(plan.waves.values_list('index', 'status'))}")


@pytest.fixture
def ran_plan(fleet, personas, eager, anchors) -> RolloutPlan:
    """A plan over the 3 clusters by the admin, waves `1, 100%`, run to its end: wave 1
    approved by the approver, wave 2 by a second approver, arun; the admin's own approval
    refused (four eyes)."""
    creator = personas["admin"]
    plan = submitted_plan(
        creator,
        name="bpfveth-canary-first",
        wave_spec="1, 100%",
        soak_minutes=0,
        respect_maintenance_windows=False,
    )
    first, second = plan.waves.get(index=1), plan.waves.get(index=2)
    with pytest.raises(PermissionDenied):
        actions.approve_wave(first, acting_user=creator, comment="my own plan, fine")
    actions.approve_wave(first, acting_user=personas["approver"], comment="canary looks right")
    tick_until(
        plan,
        lambda: Wave.objects.get(pk=second.pk).status == WaveStatus.AWAITING_APPROVAL,
        "reached wave 2",
    )
    arun = make_user("approver", username="arun")
    actions.approve_wave(second, acting_user=arun, comment="=rest of the fleet")
    tick_until(plan, lambda: plan.status == PlanStatus.COMPLETED, "completed")
    make_checkpoint()
    return plan


def download(client, plan: RolloutPlan) -> zipfile.ZipFile:
    response = client.get(f"/plans/{plan.pk}/evidence.zip")
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith("attachment;")
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def test_it_downloads_a_pack_whose_every_file_is_as_its_manifest_says(client_as, ran_plan):
    pack = download(client_as("auditor"), ran_plan)

    names = set(pack.namelist())
    manifest_bytes = pack.read("manifest.json")
    manifest = json.loads(manifest_bytes)
    assert set(manifest["files"]) == names - {"manifest.json"}
    for name, entry in manifest["files"].items():
        data = pack.read(name)
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        assert len(data) == entry["bytes"], name
    # sha256sum format: every file but the two manifests
    sums = {}
    for line in pack.read("MANIFEST.sha256").decode().splitlines():
        digest, name = line.split("  ", 1)
        sums[name] = digest
    assert set(sums) == names - {"manifest.json", "MANIFEST.sha256"}
    assert all(hashlib.sha256(pack.read(n)).hexdigest() == d for n, d in sums.items())
    # The download is itself recorded, with the manifest's hash, by whom.
    exported = AuditEvent.objects.get(action=EXPORTED)
    assert exported.actor_name == "auditor-user"
    assert exported.plan_id == ran_plan.pk
    assert exported.after["manifest_sha256"] == hashlib.sha256(manifest_bytes).hexdigest()


def test_the_plan_and_its_decisions_are_the_ones_approved(client_as, ran_plan):
    pack = download(client_as("auditor"), ran_plan)

    plan = json.loads(pack.read("plan.json"))
    assert plan["plan"]["content_hash"] == ran_plan.content_hash
    assert plan["settings"]["wave_spec"] == "1, 100%"
    assert plan["authors"][0]["user"] == "admin-user"
    clusters = [c["name"] for w in plan["waves"] for c in w["clusters"]]
    assert sorted(clusters) == sorted(c.name for c in ran_plan_clusters(ran_plan))
    assert [len(w["clusters"]) for w in plan["waves"]] == [1, CLUSTERS - 1]
    assert {c["outcome"] for w in plan["waves"] for c in w["clusters"]} == {"Done"}
    assert all(
        c["subscription"]["id"] and c["region"] for w in plan["waves"] for c in w["clusters"]
    )

    decisions = json.loads(pack.read("decisions.json"))
    assert [
        (d["wave"], d["user"], d["decision"], d["comment"]) for d in decisions["decisions"]
    ] == [
        (1, "approver-user", "approve", "canary looks right"),
        (2, "arun", "approve", "=rest of the fleet"),
    ]
    assert {d["plan_hash"] for d in decisions["decisions"]} == {ran_plan.content_hash}
    [refused] = decisions["refusals"]
    assert refused["actor"] == "admin-user"
    assert refused["action"] == RolloutEvent.DECISION_REFUSED
    assert "four eyes" in refused["reason"]
    table = pack.read("decisions.csv").decode()
    assert "canary looks right" in table
    assert "four eyes" in table
    # A comment a spreadsheet would run as a formula is quoted.
    assert "'=rest of the fleet" in table


def ran_plan_clusters(plan: RolloutPlan):
    return [t.cluster for t in plan.targets.select_related("cluster")]


def test_the_summary_names_every_cluster_approver_comment_and_refusal(client_as, ran_plan):
    summary = download(client_as("auditor"), ran_plan).read("summary.html").decode()

    for cluster in ran_plan_clusters(ran_plan):
        assert cluster.name in summary
    for words in (
        ran_plan.name,
        ran_plan.content_hash,
        "approver-user",
        "arun",
        "canary looks right",
        "four eyes",
        "BpfVeth",
        "UTC",
        "python3 -m audit.verify_export ../events.jsonl",
    ):
        assert words in summary, words
    # Self-contained: nothing fetched from elsewhere.
    for fetched in ("<link", "<script", "src=", "url("):
        assert fetched not in summary


def verify(folder) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-E", "-s", "-m", "audit.verify_export", "../events.jsonl"],
        cwd=folder / "verifier",
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_its_events_recompute_to_their_hashes_and_the_verifier_accepts_them(
    client_as, ran_plan, tmp_path
):
    pack = download(client_as("auditor"), ran_plan)

    records = [from_json_line(line) for line in pack.read("events.jsonl").decode().splitlines()]
    events = [values for kind, values in records if kind == "event"]
    assert all(event_hash(e) == e["hash"] for e in events)
    seqs = {e["seq"] for e in events}
    expected = set(AuditEvent.objects.filter(plan_id=ran_plan.pk).values_list("seq", flat=True))
    assert expected - {e.seq for e in AuditEvent.objects.filter(action=EXPORTED)} <= seqs
    done = [e for e in events if e["action"] == RolloutEvent.TARGET_DONE]
    assert len(done) == CLUSTERS
    # Checked as an auditor would, with the verifier the pack carries, away from Wavegate.
    pack.extractall(tmp_path)
    checked = verify(tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "each checked against its own hash" in checked.stdout
    # An approval's comment changed afterwards is caught.
    text = (tmp_path / "events.jsonl").read_text()
    (tmp_path / "events.jsonl").write_text(text.replace("canary looks right", "canary look right"))
    tampered = verify(tmp_path)
    assert tampered.returncode == 1
    assert "does not match its hash" in tampered.stderr
    anchoring = json.loads(pack.read("checkpoints.json"))
    assert anchoring["covering"]["seq"] >= max(seqs)
    assert anchoring["signatures"] == "valid, and the log still holds the hashes they signed"


def test_each_cluster_has_its_preflight_and_its_timeline(client_as, ran_plan):
    pack = download(client_as("auditor"), ran_plan)

    preflight = json.loads(pack.read("preflight.json"))["clusters"]
    assert len(preflight) == CLUSTERS
    for entry in preflight:
        assert entry["verdict"] == "clean", entry
        assert entry["engine_step"]["action"] == RolloutEvent.TARGET_READY
        assert entry["finished_at"] <= entry["engine_step"]["at"]
    for cluster in ran_plan_clusters(ran_plan):
        lines = pack.read(f"timelines/{cluster.name}.jsonl").decode().splitlines()
        timeline = [json.loads(line) for line in lines]
        actions_seen = [e["action"] for e in timeline if e["source"] == "audit"]
        assert RolloutEvent.TARGET_STARTED in actions_seen
        assert actions_seen[-1] == RolloutEvent.TARGET_DONE
        assert any(e["source"] == "preflight" and e["verdict"] == "clean" for e in timeline)
        assert [e["at"] for e in timeline] == sorted(e["at"] for e in timeline)


def test_the_command_writes_the_same_pack(client_as, ran_plan, tmp_path):
    page = download(client_as("auditor"), ran_plan)
    out = tmp_path / "pack.zip"

    call_command("evidence_pack", ran_plan.name, output=str(out), stdout=io.StringIO())

    with zipfile.ZipFile(out) as written:
        assert set(written.namelist()) == set(page.namelist())
        for name in ("plan.json", "decisions.json", "decisions.csv", "preflight.json"):
            assert written.read(name) == page.read(name), name
        manifest = json.loads(written.read("manifest.json"))
        for name, entry in manifest["files"].items():
            assert hashlib.sha256(written.read(name)).hexdigest() == entry["sha256"], name
    assert AuditEvent.objects.filter(action=EXPORTED, after__via="command").count() == 1


@pytest.mark.parametrize("role", ["viewer", "operator", "approver"])
def test_other_roles_are_refused_and_see_no_link(client_as, personas, role):
    make_cluster(name="aks-alpha")
    plan = approved_plan(personas["operator"], personas["approver"], name="p", wave_spec="100%")
    client = client_as(role)

    assert client.get(f"/plans/{plan.pk}/evidence.zip").status_code == 403
    assert b"evidence-pack" not in client.get(f"/plans/{plan.pk}/").content
    assert b"evidence-pack" in client_as("auditor").get(f"/plans/{plan.pk}/").content
    assert not AuditEvent.objects.filter(action=EXPORTED).exists()


def test_the_command_says_which_plan_it_cannot_find(personas):
    make_cluster(name="aks-alpha")
    plan = submitted_plan(personas["operator"], name="twice", wave_spec="100%")
    actions.abort_plan(plan, acting_user=personas["operator"], reason="again")
    submitted_plan(personas["operator"], name="twice", wave_spec="100%")

    with pytest.raises(CommandError, match="no plan with the id or the exact name 'nope'") as gone:
        call_command("evidence_pack", "nope")
    assert gone.value.returncode == 4  # not found, as in the README's table
    with pytest.raises(CommandError, match="2 plans are named 'twice'") as twice:
        call_command("evidence_pack", "twice")
    assert twice.value.returncode == 2


def test_a_plan_not_yet_run_has_its_pack_too(client_as, personas):
    make_cluster(name="aks-alpha")
    make_cluster(name="aks-beta")
    plan = approved_plan(
        personas["operator"], personas["approver"], name="later", wave_spec="1, 100%"
    )

    pack = download(client_as("admin"), plan)

    summary = pack.read("summary.html").decode()
    for words in ("aks-alpha", "aks-beta", "approver-user", "later"):
        assert words in summary, words
    preflight = json.loads(pack.read("preflight.json"))["clusters"]
    assert {p["note"] for p in preflight} == {"It has not been through preflight in this plan."}
    assert {"timelines/aks-alpha.jsonl", "timelines/aks-beta.jsonl"} <= set(pack.namelist())
