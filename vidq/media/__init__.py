"""vidq: a self-hosted video conversion service."""
