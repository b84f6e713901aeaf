"""Ops: on-call schedules, escalation policies, and the detective metrics that page them."""
