"""Importing this registers the docs tables, worker jobs and demo data (modules.import_all
does, for the API, the worker, migrations and `mech demo`)."""

from mechanisms.docs import demo, jobs, tables  # noqa: F401
