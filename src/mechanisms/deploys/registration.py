"""Importing this registers the deploys tables, worker jobs and demo data (modules.import_all
does, for the API, the worker, migrations and `mech demo`)."""

from mechanisms.deploys import demo, jobs, tables  # noqa: F401
