"""Importing this registers the deploys tables, worker jobs and demo data (modules.import_all
does, for the API, the worker, migrations and `mech demo`)."""

from mechanisms.deploys import demo, jobs, pipelines, tables  # noqa: F401
from mechanisms.ops import alarm_dependents

alarm_dependents.register_watcher("deploys.stages", pipelines.stages_watching)
