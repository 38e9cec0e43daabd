"""Stream sessions on the server: a WebSocket carrying a feed's records in, both answers out.

- ``session``: one session (``serve_session``), records answered in order by stage one,
  their stage-two messages sent as tickets end, resumable after a dropped connection.

The protocol (frames, close codes, settings) is the client's: ``multistage_client.protocol``.
"""

from multistage.streams.session import SessionServices, serve_session

__all__ = ["SessionServices", "serve_session"]
