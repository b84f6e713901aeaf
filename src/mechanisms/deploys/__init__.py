"""Deploys: pipelines gated by integration tests, block windows and break-glass.

This package holds the pure domain layer for now (calendar, gates, approvals, JUnit parsing);
it is not yet listed in ``mechanisms.modules.MECHANISMS``.
"""
