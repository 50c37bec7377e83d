"""Deliver: send alert transitions to the console and to signed-webhook subscribers."""
