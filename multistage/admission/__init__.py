"""What the ingress refuses before any work, decided with no call.

- ``gate``: does stage two take one more ticket? (``AdmissionGate``, from the store's
  reported load and what this replica admitted since);
- ``load_shedding``: does stage one take one more request? (``LoopBacklog``, from how
  late the event loop comes back to its timers).
"""

from multistage.admission.gate import AdmissionGate
from multistage.admission.load_shedding import LoopBacklog

__all__ = ["AdmissionGate", "LoopBacklog"]
