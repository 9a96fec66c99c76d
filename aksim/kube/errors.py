"""The API server's failures: every one is answered with a `kind: Status` body."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class ApiError(Exception):
    """An answer other than success; `response()` is the Status body the API server sends."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return JSONResponse(body, status_code=self.code)

    @classmethod
    def not_found(cls, resource: str, name: str, group: str = "") -> ApiError:
        qualified = f"{resource}.{group}" if group else resource
        details = {"name": name, "kind": resource}
        if group:
            details = {"name": name, "group": group, "kind": resource}
        return cls(404, "NotFound", f'{qualified} "{name}" not found', details)

    @classmethod
    def no_such_path(cls) -> ApiError:
        return cls(404, "NotFound", "the server could not find the requested resource", {})

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)

    @classmethod
    def invalid(
        cls,
        kind: str,
        group: str,
        name: str,
        field_path: str,
        problem: str,
        cause_reason: str = "FieldValueInvalid",
    ) -> ApiError:
        qualified = f"{kind}.{group}" if group else kind
        message = f'{qualified} "{name}" is invalid: {field_path}: {problem}'
        cause = {"reason": cause_reason, "message": problem, "field": field_path}
        details: dict[str, Any] = {"name": name, "kind": kind, "causes": [cause]}
        if group:
            details["group"] = group
        return cls(422, "Invalid", message, details)


UNAUTHORIZED = ApiError(401, "Unauthorized", "Unauthorized")
TIMEOUT = ApiError(
    504,
    "Timeout",
    "Timeout: request did not complete within requested timeout - context deadline exceeded",
    {},
)
