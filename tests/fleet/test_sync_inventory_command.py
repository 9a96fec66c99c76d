"""`manage.py sync_inventory` for scripts: the sync's result as JSON, exit 0 when it succeeded,
1 when it failed (with Azure's error), 3 while another sync runs."""

from __future__ import annotations

from fleet.choices import SyncStatus
from fleet.models import SyncRun
from tests.factories import make_sync_run
from tests.processes import free_port
from tests.scripting import document, ended, manage, run


def test_it_says_what_the_sync_found_as_json(db, wavegate_on_aksim):
    ran = run("sync_inventory", "--json")

    assert ran.status == 0, ran.error
    said = ran.json()
    run_row = SyncRun.objects.get()
    assert (said["id"], said["status"], said["trigger"]) == (run_row.pk, "succeeded", "command")
    assert said["counts"]["clusters"] == len(wavegate_on_aksim.fleet.clusters)
    assert said["counts"]["discovered"] == said["counts"]["clusters"]
    assert said["error"] == ""


def test_without_json_it_says_it_in_a_sentence(db, wavegate_on_aksim):
    ran = run("sync_inventory")

    assert ran.status == 0, ran.error
    clusters = len(wavegate_on_aksim.fleet.clusters)
    assert "succeeded in" in ran.out
    assert f"{clusters} clusters in 3 subscriptions; {clusters} discovered" in ran.out


def test_a_sync_already_running_is_refused_with_exit_3(db):
    make_sync_run(status=SyncStatus.RUNNING)

    ran = run("sync_inventory", "--json")

    said = ended(ran, 3)
    assert said == "An inventory sync is already running; wait for it to finish."
    assert ran.json() == {"code": "conflict", "message": said, "field": None}


def test_a_sync_that_cannot_reach_azure_exits_1_with_the_run_as_json(isolated_db):
    done = manage(
        isolated_db.url,
        "sync_inventory",
        "--json",
        AZURE_ARM_ENDPOINT=f"https://127.0.0.1:{free_port()}",
        AZURE_CREDENTIAL="static",
        AZURE_STATIC_TOKEN="t",
    )

    assert done.returncode == 1, done.stderr
    said = document(done)  # the run itself, the one document on stdout
    assert said["status"] == "failed"
    assert said["error"].startswith("Listing subscriptions: could not reach Azure")
    assert f"sync_inventory: inventory sync {said['id']} failed: Listing subscriptions" in (
        done.stderr
    )
    assert SyncRun.objects.get().status == SyncStatus.FAILED
