"""Every error the API returns is JSON (``ErrorBody``) naming what was wrong."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from multistage.models.records import InvalidRecord
from multistage_client.errors import MultistageError
from multistage_client.models import ErrorBody, FieldProblem

logger = logging.getLogger("ray.serve")


class BodyTooLarge(MultistageError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds {limit} bytes")
        self.limit = limit


class UnsupportedMediaType(MultistageError):
    """A body declared as something other than JSON: a browser's form or text/plain post
    (which a page may send across origins without asking) is never read."""

    def __init__(self, declared: str) -> None:
        super().__init__(f"the body must be application/json, not {declared[:80]}")


class RetryLater(MultistageError):
    """A 503 the client should retry after ``retry_after_s`` (sent as Retry-After)."""

    code = "unavailable"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Overloaded(RetryLater):
    """Stage one's queue is full."""

    code = "overloaded"

    def __init__(self) -> None:
        super().__init__("the service is overloaded; retry after the Retry-After delay")


class TicketStoreUnavailable(RetryLater):
    """The ticket store did not answer in time (restarting, or overwhelmed)."""

    code = "ticket_store_unavailable"

    def __init__(self) -> None:
        super().__init__("the ticket store did not answer in time; retry after Retry-After")


class UnknownTicket(MultistageError):
    def __init__(self, ticket: str) -> None:
        super().__init__(f"no ticket {ticket!r} was ever issued")


def error_response(
    status: int,
    code: str,
    message: str,
    errors: list[FieldProblem] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=code, message=message, errors=errors or [])
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(InvalidRecord, _invalid_record)
    app.add_exception_handler(BodyTooLarge, _body_too_large)
    app.add_exception_handler(UnsupportedMediaType, _unsupported_media_type)
    app.add_exception_handler(RetryLater, _retry_later)
    app.add_exception_handler(UnknownTicket, _unknown_ticket)
    app.add_exception_handler(RequestValidationError, _invalid_parameters)
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(Exception, _unexpected)


def invalid_record_body(error: InvalidRecord) -> ErrorBody:
    problems = [FieldProblem(field=e.field, message=e.message) for e in error.errors]
    code = "malformed_json" if error.malformed else "invalid_record"
    return ErrorBody(error=code, message=str(error), errors=problems)


async def _invalid_record(_: Request, error: InvalidRecord) -> JSONResponse:
    body = invalid_record_body(error)
    return JSONResponse(body.model_dump(), status_code=400 if error.malformed else 422)


async def _body_too_large(_: Request, error: BodyTooLarge) -> JSONResponse:
    problem = FieldProblem(field="body", message=f"must be at most {error.limit} bytes")
    return error_response(413, "body_too_large", str(error), [problem])


async def _unsupported_media_type(_: Request, error: UnsupportedMediaType) -> JSONResponse:
    problem = FieldProblem(field="content-type", message="must be application/json")
    return error_response(415, "unsupported_media_type", str(error), [problem])


async def _retry_later(_: Request, error: RetryLater) -> JSONResponse:
    headers = {"Retry-After": str(error.retry_after_s)}
    return error_response(503, error.code, str(error), headers=headers)


async def _unknown_ticket(_: Request, error: UnknownTicket) -> JSONResponse:
    return error_response(404, "unknown_ticket", str(error))


async def _invalid_parameters(_: Request, error: RequestValidationError) -> JSONResponse:
    problems = [
        FieldProblem(field=".".join(str(part) for part in e["loc"]), message=e["msg"])
        for e in error.errors()
    ]
    message = "; ".join(f"{p.field}: {p.message}" for p in problems)
    return error_response(422, "invalid_parameters", message, problems)


async def _http_exception(request: Request, error: HTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
    headers = error.headers
    if error.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return error_response(error.status_code, code, str(error.detail), headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method the request's path takes. Starlette names only those of the first route
    on the path, and a path served by several routes (GET and DELETE of a ticket) takes more."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "the server failed to handle this request")
