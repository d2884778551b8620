"""The OpenAPI document, told true: the errors every operation can answer, declared by rule.

Routes declare what is particular to them (a 409 of a claim, a 412 of a stale report);
what follows from the plumbing is added here for every operation, so a new route is
documented correctly without repeating it:

- 400: the input guard refused the path or query string, or the body could not be parsed;
- 401: the operation needs a bearer token (it declares a security requirement);
- 404: the operation has path parameters (an unknown or invisible resource);
- 413: the operation takes a body (bodies are bounded);
- 422: both shapes that carry the status: request validation's list of errors, and a
  domain error's one-sentence ``detail``;
- every 4xx without a body schema of its own carries ``{"detail": "..."}`` (``Error``).

String parameters also declare that control characters are refused (the input guard),
so a schema-valid request is one the API can accept.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from worklist.api.guard import INVALID_REQUEST_TEXT

JSON = "application/json"
ERROR_SCHEMA = "Error"
VALIDATION_SCHEMA = "HTTPValidationError"
NO_CONTROL_CHARACTERS = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})

ERROR_COMPONENT: dict[str, Any] = {
    "title": ERROR_SCHEMA,
    "type": "object",
    "description": "A refused request: one sentence saying what was wrong",
    "properties": {"detail": {"type": "string", "title": "Detail"}},
    "required": ["detail"],
}

BAD_REQUEST = f"Malformed request: {INVALID_REQUEST_TEXT}, or a body that cannot be parsed"
UNAUTHENTICATED = "Missing, invalid or expired bearer token, or the account is disabled"
NOT_FOUND = "No such resource, or not visible to the caller"
TOO_LARGE = "The request body is larger than this endpoint accepts"
UNPROCESSABLE = (
    "Invalid input: a list of validation errors, or one sentence for a value the schema "
    "cannot express (e.g. a cursor that was not issued by this API)"
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def _guard_string_parameters(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        if parameter.get("in") not in ("path", "query"):
            continue
        schema = parameter.get("schema", {})
        for candidate in [schema, *schema.get("anyOf", []), schema.get("items", {})]:
            if candidate.get("type") == "string" and "pattern" not in candidate:
                candidate["pattern"] = NO_CONTROL_CHARACTERS
            items = candidate.get("items", {})
            if items.get("type") == "string" and "pattern" not in items:
                items["pattern"] = NO_CONTROL_CHARACTERS


def _declare_errors(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    responses.setdefault("400", {"description": BAD_REQUEST})
    if operation.get("security"):
        responses.setdefault("401", {"description": UNAUTHENTICATED})
    if "{" in path:
        responses.setdefault("404", {"description": NOT_FOUND})
    if has_body:
        responses.setdefault("413", {"description": TOO_LARGE})
    if parameters or has_body or "422" in responses:
        unprocessable = responses.setdefault("422", {"description": UNPROCESSABLE})
        # Merged: a route may also answer 422 in a media type of its own (FHIR).
        unprocessable.setdefault("content", {}).update(
            _error_content({"anyOf": [_ref(VALIDATION_SCHEMA), _ref(ERROR_SCHEMA)]})
        )
    for status, response in responses.items():
        if status.startswith("4") and not response.get("content"):
            response["content"] = _error_content(_ref(ERROR_SCHEMA))


def declare_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the plumbing's errors (and the guard's string rule) to every operation, in place."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components[ERROR_SCHEMA] = ERROR_COMPONENT
    components.setdefault(
        VALIDATION_SCHEMA,
        {
            "title": VALIDATION_SCHEMA,
            "type": "object",
            "properties": {"detail": {"type": "array", "items": {"type": "object"}}},
        },
    )
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                _guard_string_parameters(operation)
                _declare_errors(path, operation)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve FastAPI's document with the plumbing's errors declared (built once, cached)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            # A copy: route declarations (openapi_extra, responses) share module-level dicts.
            app.openapi_schema = declare_errors(copy.deepcopy(generate()))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
