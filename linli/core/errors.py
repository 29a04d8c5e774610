"""Errors a user can cause, and their JSON problem (RFC 9457) form.

Messages are English source strings translated at render time into the caller's language.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        params: dict[str, Any] | None = None,
        errors: list[dict[str, Any]] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status
        self.field = field
        self.params = params or {}
        self.errors = errors or []


class ValidationFailed(AppError):
    status = 422
    code = "validation_failed"


class NotFound(AppError):
    status = 404
    code = "not_found"


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"


class Conflict(AppError):
    status = 409
    code = "conflict"


class TooLarge(AppError):
    status = 413
    code = "too_large"


class TooManyRequests(AppError):
    status = 429
    code = "too_many_requests"


class InvalidValue(ValueError):
    """A validator's refusal: raise it in pydantic validators instead of a bare ValueError.

    ``message`` is an English gettext msgid with ``%(name)s`` placeholders filled from ``params``;
    :func:`pydantic_message` translates it into the caller's language.
    """

    def __init__(self, message: str, **params: Any) -> None:
        self.message = message
        self.params = params
        super().__init__(message % params if params else message)


def problem(
    status: int, code: str, title: str, detail: str, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://linli.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    return body


#: pydantic error types -> English source messages (translated by the caller's catalog)
PYDANTIC_MESSAGES: dict[str, str] = {
    "missing": "This field is required.",
    "string_too_short": "Must have at least %(min_length)s characters.",
    "string_too_long": "Must have at most %(max_length)s characters.",
    "string_pattern_mismatch": "Has characters that are not allowed here.",
    "greater_than_equal": "Must be at least %(ge)s.",
    "greater_than": "Must be more than %(gt)s.",
    "less_than_equal": "Must be at most %(le)s.",
    "less_than": "Must be less than %(lt)s.",
    "int_parsing": "Must be a whole number.",
    "int_type": "Must be a whole number.",
    "int_from_float": "Must be a whole number.",
    "float_parsing": "Must be a number.",
    "float_type": "Must be a number.",
    "bool_parsing": "Must be yes or no.",
    "bool_type": "Must be yes or no.",
    "string_type": "Must be text.",
    "list_type": "Must be a list.",
    "too_long": "Too many items (at most %(max_length)s).",
    "too_short": "Too few items (at least %(min_length)s).",
    "enum": "Must be one of: %(expected)s.",
    "literal_error": "Must be one of: %(expected)s.",
    "datetime_parsing": "Must be a date and time.",
    "date_parsing": "Must be a date.",
    "json_invalid": "The request body is not valid JSON.",
    "model_attributes_type": "Must be an object.",
    "dict_type": "Must be an object.",
}


def pydantic_message(err: dict[str, Any], gettext: Any) -> str:
    """A translated message for one pydantic error."""
    kind = str(err.get("type", ""))
    ctx = {k: v for k, v in (err.get("ctx") or {}).items() if isinstance(v, str | int | float)}
    if kind == "value_error":
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, InvalidValue):
            text = str(gettext(error.message))
            return text % error.params if error.params else text
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        return str(gettext(msg))
    template = PYDANTIC_MESSAGES.get(kind)
    if template is None:
        return str(gettext("Invalid value."))
    try:
        return str(gettext(template)) % ctx
    except (KeyError, TypeError, ValueError):
        return str(gettext("Invalid value."))
