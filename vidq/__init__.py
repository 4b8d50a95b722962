"""vidq: a self-hosted video conversion service with a REST API for long-running work."""

__version__ = "0.1.0"
