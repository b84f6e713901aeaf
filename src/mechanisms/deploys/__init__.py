"""Deploys: pipelines gated by integration tests, block windows and break-glass.

The pure domain layer (calendar, gates, approvals, JUnit parsing) is decision 0013; the
storage, services, API, CLI and worker jobs on it are decision 0014. Importing the package
registers its tables and its worker jobs."""

from mechanisms.deploys import demo, jobs, tables  # noqa: F401
