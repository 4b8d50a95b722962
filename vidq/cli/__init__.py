"""The `vidq` command: serve, api, worker, keys, and the client verbs."""
