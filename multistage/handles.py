"""How replicas call each other: the transport of each kind of call, chosen in one place.

Every Serve call costs its caller and its callee CPU whatever it carries. Calls whose
results are read at once travel by value over gRPC, which measured about half the CPU
of Ray's actor calls here (``make bench``'s cpu part). The stage-two call must stay by
reference: its ``ObjectRef`` is the ticket's result, held by the ticket store and read
later, and by-value results cannot become refs.
"""

from __future__ import annotations

import ray
from ray.serve.handle import DeploymentHandle, DeploymentResponse


def by_value(handle: DeploymentHandle) -> DeploymentHandle:
    """The handle for calls whose results are awaited and used at once (gRPC transport)."""
    return handle.options(_by_reference=False)


async def object_ref_once_accepted(response: DeploymentResponse) -> ray.ObjectRef:
    """The call's result as an ``ObjectRef``, once a replica has accepted the call.

    Waits for a replica to take the call: never await this on a client's request path.
    """
    return await response._to_object_ref()
