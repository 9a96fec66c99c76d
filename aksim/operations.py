"""ARM's long-running operations on managed clusters as AKS answers them: the headers of an
accepted PUT, the operation status and result endpoints, and abort (`POST …/abort`)."""

from __future__ import annotations

import base64
import hashlib
import uuid

from starlette.requests import Request
from starlette.responses import Response

from aksim import arm
from aksim.state import ClusterState, Operation

# AKS's operation URLs carry this api-version, whatever the request's, and signature
# parameters (t, c, s, h) that clients pass back unread.
OPERATION_API_VERSION = "2016-03-30"
# .NET ticks (100 ns since 0001-01-01) at the Unix epoch: the `t` of an operation URL.
_EPOCH_TICKS = 621_355_968_000_000_000


def _opaque(seed: str, size: int) -> str:
    """`size` bytes derived from `seed`, URL-safe base64 without padding (as Azure's are)."""
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{counter}:{seed}".encode()).digest()
        counter += 1
    return base64.urlsafe_b64encode(out[:size]).decode().rstrip("=")


class Operations:
    """The operation endpoints over one `arm.Arm` (its guard, reply and cluster lookup)."""

    def __init__(self, api: arm.Arm) -> None:
        self.api = api
        self.sim = api.sim
        # When each aborted operation was canceled: its status shows it as endTime.
        self.canceled_at: dict[str, float] = {}

    # --- URLs and headers -----------------------------------------------------------------
    def url(self, state: ClusterState, op: Operation, kind: str = "operations") -> str:
        spec = state.spec
        ticks = _EPOCH_TICKS + int(op.started * 10_000_000)
        seed = f"{kind}/{op.id}"
        query = (
            f"api-version={OPERATION_API_VERSION}&t={ticks}&c={_opaque('c' + seed, 96)}"
            f"&s={_opaque('s' + seed, 256)}&h={_opaque('h' + seed, 32)}"
        )
        return (
            f"{self.api.base_url}/subscriptions/{spec.subscription_id}/{arm.PROVIDER}"
            f"/locations/{spec.location}/{kind}/{op.id}?{query}"
        )

    def put_headers(self, state: ClusterState, op: Operation) -> dict[str, str]:
        """An accepted PUT's headers: AKS sends `Azure-AsyncOperation` only — no Location,
        no Retry-After (the SDK then waits its default 30 s between reads), no ETag."""
        headers = {"Azure-AsyncOperation": self.url(state, op)}
        if self.sim.faults.retry_after:
            headers["Retry-After"] = str(self.retry_after(op))
        return headers

    def retry_after(self, op: Operation) -> int:
        # Only with faults.retryAfter: about ten reads over an operation, 1 to 30 s apart.
        return max(1, min(30, int(op.duration / 10)))

    # --- endpoints ------------------------------------------------------------------------
    def status(self, request: Request) -> Response:
        """GET …/locations/{location}/operations/{id}: {name, status, startTime[, endTime,
        error]}, as the recorded AKS answers are."""
        op = self._operation(request)
        if isinstance(op, Response):
            return op
        status = op.status(self.sim.now(), self.sim.faults.stuck_operations)
        body: dict[str, object] = {
            "name": op.id,
            "status": status,
            "startTime": arm._iso(op.started),
        }
        headers = {}
        if status == "InProgress":
            if self.sim.faults.retry_after:
                headers["Retry-After"] = str(self.retry_after(op))
        else:
            body["endTime"] = arm._iso(self.canceled_at.get(op.id, op.started + op.duration))
            if status == "Failed":
                body["error"] = {
                    "code": "ReconcileVMSSAgentPoolFailed",
                    "message": "aksim: the operation failed while reimaging nodes "
                    "(faults.lroFailureRate). The cluster is left in provisioningState Failed; "
                    "retry the update.",
                }
        return self.api.reply(request, body, headers=headers)

    def result(self, request: Request) -> Response:
        """GET …/operationresults/{id}: 202 while it runs, 204 once it succeeded."""
        op = self._operation(request)
        if isinstance(op, Response):
            return op
        status = op.status(self.sim.now(), self.sim.faults.stuck_operations)
        if status == "InProgress":
            headers = {"Location": f"{self.api.base_url}{request.url.path}?{request.url.query}"}
            if self.sim.faults.retry_after:
                headers["Retry-After"] = str(self.retry_after(op))
            return self.api.reply(request, None, status=202, headers=headers)
        if status == "Failed":
            return arm.error(
                500,
                "ReconcileVMSSAgentPoolFailed",
                "aksim: the operation failed while reimaging nodes.",
            )
        if status == "Canceled":  # aksim's guess: the public material shows no such answer
            return arm.error(409, "OperationCanceled", "The operation was canceled (aborted).")
        return self.api.reply(request, None, status=204)

    def abort(self, request: Request) -> Response:
        """POST …/managedClusters/{name}/abort: the running operation ends Canceled, and so
        does the cluster's provisioningState. 202 with the abort's own operation (which
        succeeds at once), or 204 when nothing runs (ManagedClustersAbortOperation.json)."""
        found = self.api.find(request, "writes")
        if isinstance(found, Response):
            return found
        state = found
        sim = self.sim
        with sim.lock:
            running = state.operation
            if running is None or not sim.operation_in_progress(state):
                return self.api.reply(request, None, status=204)
            now = sim.now()
            running.canceled = True
            self.canceled_at[running.id] = now
            aborting = Operation(
                id=str(uuid.uuid4()),
                cluster_key=state.spec.key,
                mode=running.mode,
                started=now,
                duration=0.0,
                fails=False,
                request_id=request.headers.get("x-ms-client-request-id", ""),
                rolls=False,
                finished=True,
            )
            sim.operations[aborting.id] = aborting
            sim.settle(state)
            headers = {
                "Azure-AsyncOperation": self.url(state, aborting),
                "Location": self.url(state, aborting, "operationresults"),
            }
            if sim.faults.retry_after:
                headers["Retry-After"] = "1"
            # The recorded abort answers with the cluster as its body.
            body = self.api.cluster_json(state)
        return self.api.reply(request, body, status=202, headers=headers)

    def _operation(self, request: Request) -> Operation | Response:
        refused = self.api.guard(request, "reads", request.path_params["sub"])
        if refused:
            return refused
        op = self.sim.operations.get(request.path_params["op"])
        if op is None:
            return arm.error(
                404, "NotFound", f"Operation {request.path_params['op']} was not found."
            )
        state = self.sim.clusters.get(op.cluster_key)
        if state is not None and state.deny_access:
            return self.api.forbidden(state, "reads")
        if state is not None:
            self.sim.settle(state)
        return op
