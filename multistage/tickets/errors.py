"""Why a ticket did not complete: its ``error``, a stable code and a message for a person.

Never a traceback, a file path or an exception's repr: those go to the log of the
replica where it happened, under the ticket's id.
"""

from __future__ import annotations

from multistage_client.models import ErrorBody

# The one code that ends a ticket 'expired' rather than 'failed' when stage two gives it.
DEADLINE_PASSED = "deadline_passed"


def deadline_passed() -> ErrorBody:
    return ErrorBody(error=DEADLINE_PASSED, message="the deadline passed before stage two started")


def model_failed() -> ErrorBody:
    return ErrorBody(error="model_failed", message="stage two's model failed on this record")


def non_finite_output() -> ErrorBody:
    return ErrorBody(
        error="non_finite_output", message="the model produced non-finite scores for this record"
    )


def stage_two_full(limit: int) -> ErrorBody:
    return ErrorBody(
        error="stage_two_full", message=f"stage two had {limit} unfinished tickets, its limit"
    )


def tenant_full(tenant: str, limit: int) -> ErrorBody:
    return ErrorBody(
        error="tenant_full",
        message=f"tenant {tenant!r} had {limit} unfinished tickets, its limit",
    )


def canceled(why: str) -> ErrorBody:
    return ErrorBody(error="canceled", message=why)


def timed_out(timeout_s: float) -> ErrorBody:
    return ErrorBody(error="timed_out", message=f"stage two did not end within {timeout_s:g} s")


def replica_lost(attempts: int) -> ErrorBody:
    return ErrorBody(
        error="replica_lost",
        message=f"stage two was attempted {attempts} times; the replica running it was lost "
        "each time",
    )


def stage_two_error() -> ErrorBody:
    return ErrorBody(error="stage_two_error", message="stage two failed for this ticket")


def ticket_lost(why: str) -> ErrorBody:
    return ErrorBody(
        error="ticket_lost",
        message=f"{why}; stage two's work for this ticket is lost: submit it again",
    )


def result_expired() -> ErrorBody:
    return ErrorBody(error="result_expired", message="its result was released after the TTL")
