"""Notifications when a job ends: webhook targets, signing and delivery, email, back-off."""
