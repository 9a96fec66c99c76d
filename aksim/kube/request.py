"""A request to a cluster's API, as the handlers see it, and the list bodies they answer with."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse

from aksim.kube.errors import ApiError
from aksim.kube.node_views import NodeView, node_views
from aksim.state import ClusterState, Simulator


@dataclass
class Call:
    sim: Simulator
    state: ClusterState
    params: dict[str, str]
    query: Mapping[str, str]
    body: bytes
    _nodes: list[NodeView] | None = field(default=None, repr=False)

    def json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.body or b"null")
        except ValueError as exc:
            raise ApiError.bad_request(
                f"the body of the request was in an unknown format: {exc}"
            ) from None
        if not isinstance(body, dict):
            raise ApiError.bad_request("the body of the request was in an unknown format")
        return body

    def nodes(self) -> list[NodeView]:
        if self._nodes is None:
            self._nodes = node_views(self.sim, self.state)
        return self._nodes

    def list_response(
        self, kind: str, api_version: str, items: list[dict[str, Any]]
    ) -> JSONResponse:
        """A list body, paged by `limit` and `continue` as the server pages."""
        offset = _continue_offset(self.query.get("continue"))
        limit_text = self.query.get("limit") or "0"
        limit = int(limit_text) if limit_text.isdigit() else 0
        metadata: dict[str, Any] = {"resourceVersion": str(self.state.resource_version)}
        page = items[offset:]
        if limit > 0 and len(page) > limit:
            page = page[:limit]
            metadata["continue"] = base64.b64encode(
                json.dumps({"offset": offset + limit}).encode()
            ).decode()
            metadata["remainingItemCount"] = len(items) - offset - limit
        return JSONResponse(
            {"kind": kind, "apiVersion": api_version, "metadata": metadata, "items": page}
        )


def _continue_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(json.loads(base64.b64decode(token))["offset"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ApiError.bad_request("continue key is not valid: unable to decode") from None


def strip_kind(obj: dict[str, Any]) -> dict[str, Any]:
    """Items of a built-in list carry no kind/apiVersion of their own."""
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
