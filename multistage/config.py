"""The application's settings, as the Serve config's ``args`` give them (validated here).

Each group is read by the deployments it concerns; ``graphs/multistage.py`` gathers them
into ``AppArgs``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator


class HttpLimits(BaseModel):
    """What the ingress accepts from clients, and how long it lets them wait."""

    max_body_bytes: int = Field(1 << 20, gt=0, description="Larger bodies get 413.")
    max_batch_records: int = Field(64, gt=0, description="Most records in one batch request.")
    max_wait_s: float = Field(30.0, ge=0, description="Cap on a long-poll's ?wait=.")
    heartbeat_s: float = Field(10.0, gt=0, description="Event-stream heartbeat interval.")
    max_deadline_s: float = Field(3600.0, gt=0, description="Cap on a request's ?deadline_s=.")
    shed_after_ms: float = Field(
        500.0,
        gt=0,
        description="Stage one answers 503 'overloaded' to a request that finds the "
        "replica's event loop busy this long without a pause: a backlog it cannot clear, "
        "not a burst it can.",
    )


class StoreCalls(BaseModel):
    """How each ingress replica talks to the ticket store: few calls, shared by requests."""

    max_per_call: int = Field(
        256, gt=0, description="Most submissions one call to the ticket store carries."
    )
    max_unsent: int = Field(
        4096,
        gt=0,
        description="Submissions a replica holds while the store does not take them; "
        "past it, stage two is 'unavailable' (no ticket).",
    )
    every_s: float = Field(
        0.02,
        ge=0,
        description="Submissions, and the shared wait for the tickets clients wait on, "
        "leave at most this often: up to this much later stage two, for fewer, fuller "
        "calls under load (an idle replica's first call leaves at once).",
    )
    timeout_s: float = Field(
        2.0,
        gt=0,
        description="A store call unanswered this long is given up: a read answers 503, a "
        "submission is sent again.",
    )
    by_value: bool = Field(
        True,
        description="Calls to the store over gRPC, by value (about half the CPU of Ray's "
        "actor calls here); false: actor calls.",
    )


class TicketPolicy(BaseModel):
    """How many tickets the store takes, how long it keeps them, how hard it tries."""

    result_ttl_s: float = Field(600.0, gt=0, description="How long finished tickets are kept.")
    max_unfinished: int = Field(
        1000, gt=0, description="Past this many pending or running tickets, new work is rejected."
    )
    max_held: int = Field(
        100_000, gt=0, description="Most tickets held; past it the oldest finished are released."
    )
    max_attempts: int = Field(3, ge=1, description="Calls per ticket when heavy replicas die.")
    dispatch_wait_s: float = Field(
        0.0,
        ge=0,
        description="How long a ticket waits for others to share its stage-two call: "
        "milliseconds of stage-two latency for less CPU per ticket under load.",
    )
    records_per_call: int = Field(
        16,
        ge=1,
        description="Most tickets one stage-two call carries: under load, waiting tickets "
        "share calls, whose cost (not the model's) bounds a small machine.",
    )
    timeout_s: float = Field(300.0, gt=0, description="A ticket unfinished after this fails.")
    submission_timeout_s: float = Field(
        30.0,
        gt=0,
        description="How long a ticket's submission may take to reach the store after the "
        "ticket was issued (the ingress sends it again meanwhile); one that has not "
        "arrived by then reads 'lost'.",
    )
    resubmit_grace_s: float = Field(
        10.0,
        gt=0,
        description="After a store replica starts, how long it waits for ingress replicas "
        "to send again the submissions its predecessor never took.",
    )

    @model_validator(mode="after")
    def _unfinished_fit(self) -> TicketPolicy:
        if self.max_unfinished > self.max_held:
            raise ValueError("max_unfinished must not exceed max_held")
        return self


class StreamLimits(BaseModel):
    """Stream sessions (``GET /v1/streams``): what one WebSocket session may hold."""

    max_unfinished: int = Field(
        64,
        gt=0,
        description="Most records of one session whose stage two has not ended; past it a "
        "record still gets stage one, and its stage two is 'rejected'. A session may ask "
        "for less when it opens.",
    )
    deadline_frames: float = Field(
        10.0,
        gt=0,
        description="A session's default stage-two deadline, in frame intervals: stage two "
        "for a frame is worth what it is fresh.",
    )
    idle_timeout_s: float = Field(
        60.0, gt=0, description="A session that sends nothing this long is closed (4408)."
    )
    auth_timeout_s: float = Field(
        5.0,
        gt=0,
        description="How long a session without a key in its headers has to send one in its "
        "first message, when a key is configured.",
    )
    allowed_origins: list[str] = Field(
        [],
        description="Web pages (scheme://host[:port]) allowed to open sessions besides the "
        "service's own origin. A client that sends no Origin header (not a browser) is always "
        "allowed; any other origin is closed with 4403.",
    )
