"""Done without a page: tokens alone create, submit, approve and follow a plan that a real
worker runs against aksim, over HTTP to gunicorn. The author's token is refused the approval
(four eyes), a read-only token every change, a revoked one at once; and no log line of any
process, nor the audit log, holds a token."""

from __future__ import annotations

import logging
import time

import pytest
import requests
from django.db import transaction

from api import tokens
from api.models import ApiToken
from audit.models import AuditEvent
from fleet.choices import SyncTrigger
from fleet.sync import run_sync
from tests.aksim.builders import eligible_clean
from tests.api.helpers import token_for
from tests.browser.app import serve
from tests.conftest import start_beat, start_worker
from tests.factories import make_user

TIMEOUT = 240


class Http:
    def __init__(self, base: str, raw: str) -> None:
        self.base, self.session = base + "/api/v1/", requests.Session()
        self.session.headers["Authorization"] = f"Bearer {raw}"

    def get(self, path: str, **params) -> requests.Response:
        return self.session.get(self.base + path, params=params, timeout=30)

    def post(self, path: str, body=None) -> requests.Response:
        return self.session.post(self.base + path, json=body or {}, timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 180)
def test_tokens_alone_run_a_plan_to_its_end(isolated_db, wavegate_on_aksim, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    aksim = wavegate_on_aksim
    assert run_sync(SyncTrigger.COMMAND).status == "succeeded"
    clean = sorted(s.name for s in aksim.fleet.clusters if eligible_clean(s) and not s.private)
    chosen = clean[:3]
    env = {
        **aksim.wavegate_env(),
        "WAVEGATE_SCAN_POLL_SECONDS": "0.05",
        "WAVEGATE_SCAN_DEADLINE_SECONDS": "20",
        "WAVEGATE_ENGINE_TICK_SECONDS": "0.5",
        "LOG_LEVEL": "DEBUG",
    }
    olga = make_user("operator", "approver", username="olga")  # may approve, not her own
    arun = make_user("approver", username="arun")
    raws = {
        "olga": token_for(olga),
        "arun": token_for(arun),
        "reader": token_for(make_user("admin", username="rita"), read_only=True),
    }
    worker = start_worker(
        isolated_db.url, tmp_path / "worker.log", env, "--pool", "threads", "--concurrency", "4"
    )
    beat = start_beat(isolated_db.url, worker, tmp_path, env)
    try:
        with serve(isolated_db.url, tmp_path, CELERY_QUEUE=worker.queue, **env) as base:
            operator, approver = Http(base, raws["olga"]), Http(base, raws["arun"])
            reader = Http(base, raws["reader"])
            made = operator.post(
                "plans/",
                {
                    "name": "api-only",
                    "names": chosen,
                    "wave_spec": "1, 100%",
                    "soak_minutes": 0,
                    "failure_budget": "100%",
                    "respect_maintenance_windows": False,
                    "submit": True,
                },
            )
            assert made.status_code == 201, made.text
            plan_id = made.json()["id"]

            refused = operator.post(
                f"plans/{plan_id}/waves/1/approve/",
                {"comment": "me", "plan_hash": made.json()["content_hash"]},
            )
            assert refused.status_code == 403
            assert "four eyes" in refused.json()["message"]

            for path in (
                "plans/",
                f"plans/{plan_id}/submit/",
                f"plans/{plan_id}/pause/",
                f"plans/{plan_id}/resume/",
                f"plans/{plan_id}/abort/",
                f"plans/{plan_id}/waves/1/approve/",
                f"plans/{plan_id}/waves/1/reject/",
                "emergency-stop/",
                "emergency-stop/lift/",
            ):
                denied = reader.post(path, {"reason": "r", "comment": "c"})
                assert denied.status_code == 403, (path, denied.text)
                assert denied.json()["code"] == "read_only_token"
            assert (
                reader.session.patch(
                    reader.base + f"plans/{plan_id}/", json={"name": "x"}, timeout=30
                ).json()["code"]
                == "read_only_token"
            )
            assert reader.get(f"plans/{plan_id}/status/").status_code == 200

            deadline = time.monotonic() + TIMEOUT
            while True:
                status = operator.get(f"plans/{plan_id}/status/").json()
                if status["finished"]:
                    break
                for wave in status["waves"]:
                    if wave["status"] == "awaiting_approval":
                        approved = approver.post(
                            f"plans/{plan_id}/waves/{wave['index']}/approve/",
                            {"comment": "ok", "plan_hash": status["content_hash"]},
                        )
                        assert approved.status_code == 200, approved.text
                assert time.monotonic() < deadline, (status, worker.process.log()[-3000:])
                time.sleep(0.5)

            assert status["status"] == "completed", status
            assert status["progress"]["done"] == len(chosen), status
            assert [w["status"] for w in status["waves"]] == ["done", "done"]
            assert status["outcome"]["headline"] == "Completed"
            for name in chosen:
                spec = next(s for s in aksim.fleet.clusters if s.name == name)
                assert aksim.truth(spec)["accelerationMode"] == "BpfVeth"

            # Revoked: refused on the very next request, by either web process.
            with transaction.atomic():
                tokens.revoke(ApiToken.objects.get(user_id=arun.pk), acting_user=arun)
            for _ in range(4):
                gone = approver.get("plans/")
                assert gone.status_code == 401
                assert gone.json()["code"] == "token_revoked"
    finally:
        beat.stop()
        worker.process.stop()

    logs = {
        "gunicorn": (tmp_path / "gunicorn.log").read_text(),
        "worker": worker.process.log(),
        "beat": (tmp_path / "beat.log").read_text(),
        "test": caplog.text,
    }
    assert "GET /api/v1/plans/" in logs["gunicorn"]  # the access log is there to be searched
    for raw in raws.values():
        for name, text in logs.items():
            assert raw not in text, f"a token in the {name} log"
            assert raw[4:] not in text, f"a token's secret in the {name} log"
        for event in AuditEvent.objects.all():
            assert raw not in f"{event.before} {event.after} {event.object_label}"
