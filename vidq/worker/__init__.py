"""The loop: claim, heartbeat, run, watch for cancel, finish, recover."""
