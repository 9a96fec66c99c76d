"""`manage.py run_preflight`: scans started as a person starts them on the pages (the same
actions, as the user --as names, refused in the same words), and with --wait their verdicts,
read by a real worker from aksim's clusters, with an exit status a script can act on."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from fleet.choices import ScanStatus, SyncTrigger
from fleet.models import Cluster, PreflightScan
from fleet.sync import run_sync
from tests.aksim.builders import eligible_clean
from tests.conftest import start_worker
from tests.factories import make_cluster, make_scan, make_user
from tests.scripting import document, ended, manage, run


def test_a_scan_is_queued_as_the_user_and_reported_at_once(personas):
    cluster = make_cluster(name="aks-one")

    ran = run("run_preflight", "--cluster", "aks-one", "--as", "operator-user", "--json")

    assert ran.status == 0, ran.error
    scan = PreflightScan.objects.get()
    assert ran.json() == {
        "scans": [
            {
                "scan": scan.pk,
                "cluster": "aks-one",
                "cluster_id": cluster.pk,
                "status": "queued",
                "status_label": "Queued",
                "nodes_expected": 0,
                "nodes_read": 0,
                "findings": 0,
                "message": "",
                "queued_at": scan.queued_at.isoformat(),
                "finished_at": None,
            }
        ],
        "counts": {"queued": 1},
        "waited": False,
        "finished": False,
        "clean": False,
    }
    assert scan.requested_by == personas["operator"]
    requested = AuditEvent.objects.get(action="preflight.scan_requested")
    assert (requested.actor_name, requested.cluster_id) == ("operator-user", cluster.pk)


def test_all_queues_every_eligible_cluster_as_the_page_does(personas):
    for n in range(3):
        make_cluster(name=f"aks-{n}")
    make_cluster(name="aks-old", kubernetes_version="1.29.4")  # not eligible

    ran = run("run_preflight", "--all", "--as", "admin-user")

    assert ran.status == 0, ran.error
    assert ran.out.startswith("3 scans queued, up to 8 at a time")
    assert sorted(PreflightScan.objects.values_list("cluster__name", flat=True)) == [
        "aks-0",
        "aks-1",
        "aks-2",
    ]


def test_a_viewer_is_refused_in_the_pages_words_and_the_refusal_recorded(personas):
    make_cluster(name="aks-one")

    ran = run("run_preflight", "--cluster", "aks-one", "--as", "viewer-user", "--json")

    said = ended(ran, 3)
    assert said == "Starting preflight scans needs the operator or admin role."
    assert ran.json() == {"code": "forbidden", "message": said, "field": None}
    assert not PreflightScan.objects.exists()
    refusal = AuditEvent.objects.get(action="access.refused")
    assert refusal.actor_name == "viewer-user"
    assert refusal.after == {"command": "manage.py run_preflight", "refusal": said}


def test_one_cluster_already_being_scanned_refuses_them_all(personas):
    make_cluster(name="aks-free")
    make_scan(make_cluster(name="aks-busy"), status=ScanStatus.RUNNING)

    ran = run(
        "run_preflight", "--cluster", "aks-free", "--cluster", "aks-busy", "--as", "operator-user"
    )

    assert ended(ran, 3) == "A scan of aks-busy is already queued or running."
    assert not PreflightScan.objects.filter(cluster__name="aks-free").exists()
    assert AuditEvent.objects.filter(action="preflight.action_refused").count() == 1


@pytest.mark.parametrize(
    ("argv", "status", "said"),
    [
        (["--cluster", "aks-nowhere", "--as", "operator-user"], 4, "no cluster named"),
        (["--cluster", "aks-one", "--as", "nobody"], 4, "There is no user 'nobody'."),
        (["--cluster", "aks-one", "--as", "operator-user", "--wait", "0"], 2, "above 0"),
        (["--cluster", "aks-one", "--as", "operator-user", "--wait", "nan"], 2, "above 0"),
        (["--cluster", "aks-one", "--as", "operator-user", "--wait", "inf"], 2, "finite"),
        (["--cluster", "aks-one"], 2, "the following arguments are required: --as"),
        (["--as", "operator-user"], 2, "one of the arguments --cluster --all is required"),
    ],
)
def test_what_cannot_be_found_or_used_is_named(personas, argv, status, said):
    make_cluster(name="aks-one")

    assert said in ended(run("run_preflight", *argv), status)
    assert not PreflightScan.objects.exists()


def test_two_clusters_of_one_name_want_the_arm_id(personas):
    first, second = make_cluster(name="aks-twin"), make_cluster(name="aks-twin")

    said = ended(run("run_preflight", "--cluster", "aks-twin", "--as", "operator-user"), 2)
    ran = run("run_preflight", "--cluster", second.arm_id, "--as", "operator-user")

    assert f"give its ARM id instead ({first.arm_id}; {second.arm_id})" in said
    assert ran.status == 0, ran.error
    assert PreflightScan.objects.get().cluster == second


def test_waiting_with_no_worker_ends_at_the_time_limit_saying_what_is_still_open(personas):
    make_cluster(name="aks-one")

    ran = run(
        "run_preflight", "--cluster", "aks-one", "--as", "operator-user", "--wait", "0.3", "--json"
    )

    assert ended(ran, 1) == "1 scan(s) still queued or running after 0.3 s: aks-one (queued)"
    said = ran.json()  # the report alone: one document
    assert (said["waited"], said["finished"], said["counts"]) == (True, False, {"queued": 1})


@pytest.mark.timeout(300)
def test_a_real_worker_scans_and_the_exit_status_says_clean_or_not(
    isolated_db, wavegate_on_aksim, tmp_path
):
    aksim = wavegate_on_aksim
    assert run_sync(SyncTrigger.COMMAND).status == "succeeded"
    running = [c for c in aksim.fleet.clusters if not c.private and c.power_state == "Running"]
    clean = next(c.name for c in running if eligible_clean(c))
    blocked = next(c.name for c in running if c.user_rules)
    env = {
        **aksim.wavegate_env(),
        "WAVEGATE_SCAN_POLL_SECONDS": "0.05",
        "WAVEGATE_SCAN_DEADLINE_SECONDS": "20",
        "LOG_LEVEL": "WARNING",
    }
    make_user("operator", username="olga")
    worker = start_worker(isolated_db.url, tmp_path / "worker.log", env)
    try:
        env["CELERY_QUEUE"] = worker.queue
        good = manage(
            isolated_db.url, "run_preflight", "--cluster", clean, "--as", "olga", "--wait", "90",
            **env,
        )  # fmt: skip
        bad = manage(
            isolated_db.url, "run_preflight", "--cluster", clean, "--cluster", blocked,
            "--as", "olga", "--wait", "90", "--json", **env,
        )  # fmt: skip
    finally:
        worker.process.stop()

    assert good.returncode == 0, good.stderr + worker.process.log()[-2000:]
    nodes = Cluster.objects.get(name=clean).latest_scan.nodes_read
    assert good.stdout.startswith(f"{clean}: clean, {nodes} of {nodes} nodes read\n")
    assert good.stdout.endswith("1 scan(s): 1 clean\n")
    assert bad.returncode == 1, bad.stderr
    verdicts = {row["cluster"]: row for row in document(bad)["scans"]}
    assert verdicts[clean]["status"] == "clean"
    assert verdicts[blocked]["status"] == "blocked"
    assert verdicts[blocked]["findings"] > 0
    assert f"1 of 2 scan(s) not clean: {blocked} (blocked)" in bad.stderr
