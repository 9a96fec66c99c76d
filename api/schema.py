"""The errors every operation may answer, written into the OpenAPI schema once for all
(drf-spectacular's postprocessing hook), each with an example."""

from __future__ import annotations

from typing import Any

ERROR = {
    "type": "object",
    "description": "Every error: a stable code, a message for a person, the field at fault.",
    "properties": {
        "code": {"type": "string", "description": "Stable: scripts may branch on it."},
        "message": {"type": "string", "description": "What went wrong and what to do."},
        "field": {
            "type": "string",
            "nullable": True,
            "description": "The input field at fault (dotted for nested ones), or null.",
        },
        "errors": {
            "type": "object",
            "description": "Invalid input only: every field's messages.",
            "additionalProperties": True,
        },
    },
    "required": ["code", "message", "field"],
}

_EXAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    "400": (
        "The input is malformed or invalid.",
        {
            "code": "invalid",
            "message": "concurrency: Ensure this value is greater than or equal to 1.",
            "field": "concurrency",
            "errors": {"concurrency": ["Ensure this value is greater than or equal to 1."]},
        },
    ),
    "401": (
        "No token or session, or a token that cannot be used.",
        {
            "code": "token_expired",
            "message": "API token 'ci' expired at 2026-11-30 12:00 UTC: create a new one.",
            "field": None,
        },
    ),
    "403": (
        "Refused for who is asking: a role, four eyes, a read-only token.",
        {
            "code": "forbidden",
            "message": "You created plan 'canary': another approver, who did not write it, must "
            "decide its waves (four eyes).",
            "field": None,
        },
    ),
    "404": (
        "No such object.",
        {
            "code": "not_found",
            "message": "Nothing here: the id or address is not one Wavegate knows.",
            "field": None,
        },
    ),
    "405": (
        "This method is not allowed here.",
        {"code": "method_not_allowed", "message": 'Method "PUT" not allowed.', "field": None},
    ),
    "406": (
        "Only JSON is served here.",
        {
            "code": "not_acceptable",
            "message": "Could not satisfy the request Accept header.",
            "field": None,
        },
    ),
    "409": (
        "Refused for the state things are in (the pages' words).",
        {
            "code": "conflict",
            "message": "Plan 'canary' is running, not a draft.",
            "field": None,
        },
    ),
    "415": (
        "Send JSON.",
        {
            "code": "unsupported_media_type",
            "message": 'Unsupported media type "text/plain" in request.',
            "field": None,
        },
    ),
}
_CHANGES = {"post", "put", "patch", "delete"}


def _response(status: str) -> dict[str, Any]:
    description, example = _EXAMPLES[status]
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/Error"},
                "examples": {status: {"value": example}},
            }
        },
    }


def document_errors(result: dict[str, Any], generator: Any, request: Any, public: bool) -> Any:
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _CHANGES | {"get", "head"}:
                continue
            responses = operation.setdefault("responses", {})
            statuses = ["400", "401", "403", "405", "406"]
            if "{" in path:
                statuses.append("404")
            if method in _CHANGES:
                statuses += ["409", "415"]
            for status in statuses:
                responses.setdefault(status, _response(status))
    return result
