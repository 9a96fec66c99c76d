"""GET /version: the cluster's Kubernetes version as the API server reports it."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from aksim.kube.metadata import stable_hex
from aksim.kube.request import Call


def _go_version(minor: int) -> str:
    return {30: "go1.22.12", 31: "go1.23.8", 32: "go1.23.10", 33: "go1.24.4", 34: "go1.24.6"}.get(
        minor, "go1.25.1" if minor > 34 else "go1.22.12"
    )


def get_version(call: Call) -> Response:
    version = call.state.spec.kubernetes_version
    major, minor = version.split(".")[:2]
    return JSONResponse(
        {
            "major": major,
            "minor": minor,
            "emulationMajor": major,
            "emulationMinor": minor,
            "minCompatibilityMajor": major,
            "minCompatibilityMinor": str(int(minor) - 1),
            "gitVersion": f"v{version}",
            "gitCommit": stable_hex(40, "kubernetes", version),
            "gitTreeState": "clean",
            "buildDate": "2025-07-15T18:20:53Z",
            "goVersion": _go_version(int(minor)),
            "compiler": "gc",
            "platform": "linux/amd64",
        }
    )
