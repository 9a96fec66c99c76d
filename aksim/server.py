"""The aksim HTTPS server: ARM, Resource Graph, each cluster's Kubernetes API and the admin API,
in one Starlette app served by uvicorn with aksim's own CA."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import sys
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from aksim import admin, arm, kube, tls
from aksim.fleetfile import Fleet
from aksim.state import Simulator


class FaultMiddleware:
    """Added latency for every answer, and a share of ARM requests failing with 5xx.

    Plain ASGI rather than BaseHTTPMiddleware, which costs too much per request at 10,000
    clusters."""

    def __init__(self, app: ASGIApp, sim: Simulator) -> None:
        self.app = app
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith("/_aksim/"):
            await self.app(scope, receive, send)
            return
        faults = self.sim.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        is_arm = path.startswith("/subscriptions") or path.startswith("/providers")
        if is_arm and faults.error_rate and random.random() < faults.error_rate:
            status = random.choice([500, 503])
            self.sim.requests["injected_errors"] += 1
            response = arm.error(
                status,
                "InternalServerError" if status == 500 else "ServiceUnavailable",
                "aksim injected a server error (faults.errorRate). Retry the request.",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def build_app(sim: Simulator, certificates: tls.Certificates, base_url: str) -> Starlette:
    app = Starlette(
        routes=[
            Mount("/_aksim", routes=admin.routes(sim)),
            Mount("/k8s", routes=kube.routes(sim)),
            *arm.routes(sim, certificates, base_url),
        ]
    )
    app.add_middleware(FaultMiddleware, sim=sim)
    return app


class _Server(uvicorn.Server):
    """uvicorn's server that writes the ready file once it listens."""

    ready_file: Path | None = None
    ready_body: dict[str, Any] = {}

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.ready_file is not None:
            tmp = self.ready_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.ready_body))
            tmp.replace(self.ready_file)


def serve(
    fleet_path: Path,
    port: int,
    *,
    host: str = "127.0.0.1",
    faults_path: Path | None = None,
    time_scale: float = 1.0,
    ready_file: Path | None = None,
    state_dir: Path | None = None,
) -> None:
    fleet = Fleet.load(fleet_path)
    sim = Simulator(fleet, time_scale=time_scale)
    if faults_path is not None:
        admin.apply_faults(sim, json.loads(faults_path.read_text()))

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it, Nagle holds a response's body back until
    # the client's delayed ACK (~40 ms a request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    port = sock.getsockname()[1]
    endpoint = f"https://{host}:{port}"

    directory = state_dir or (ready_file.parent if ready_file else Path.cwd() / "var" / "aksim")
    certificates = tls.create(directory)
    print(f"aksim: CA certificate at {certificates.ca_path}", flush=True)
    print(
        f"aksim: serving {len(fleet.clusters)} clusters in {len(fleet.subscriptions)} "
        f"subscriptions at {endpoint}",
        flush=True,
    )

    app = build_app(sim, certificates, endpoint)
    config = uvicorn.Config(
        app,
        ssl_certfile=str(certificates.cert_path),
        ssl_keyfile=str(certificates.key_path),
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=2,
    )
    server = _Server(config)
    server.ready_file = ready_file
    server.ready_body = {
        "endpoint": endpoint,
        "ca": str(certificates.ca_path),
        "port": port,
        "clusters": len(fleet.clusters),
    }
    server.run(sockets=[sock])
    sys.exit(0)


__all__ = ["JSONResponse", "build_app", "serve"]
