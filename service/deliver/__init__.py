"""Deliver: route alert transitions to receivers (console, signed webhooks, Slack, email).

consumer (route, silence) -> groups (group_wait/interval, repeat, quiet hours) -> deliveries
(in Redis) -> sender (one attempt per due delivery, retry schedule, rate limits, dead letters).
"""
