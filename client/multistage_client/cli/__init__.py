"""The command line, ``multistage`` (``multistage --help``): predict, follow, cancel and
stream from a shell, with exit statuses that say how it went."""

from multistage_client.cli.main import main

__all__ = ["main"]
