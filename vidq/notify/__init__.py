"""Notifications when a job ends: signing and delivery of webhooks, email, back-off."""
