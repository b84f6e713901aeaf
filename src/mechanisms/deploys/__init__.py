"""Deploys: pipelines gated by integration tests, block windows and break-glass.

The pure domain layer (calendar, gates, approvals, JUnit parsing) is decision 0013; the
storage, services, API, CLI and worker jobs on it are decision 0014. Importing the package
registers nothing, so that `mech deploy … --url` (a CI job acting through the API) loads
no database code: ``mechanisms.deploys.registration``, which ``modules.import_all``
imports, registers the tables, worker jobs and demo data."""
