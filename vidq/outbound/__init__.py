"""Requests vidq makes to URLs its clients name (webhooks, `source_url` imports): which
addresses they may reach, and how a request reaches exactly the address that was checked."""
