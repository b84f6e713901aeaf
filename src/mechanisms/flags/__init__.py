"""Flags: feature access controls, treatment groups, throttled rollout, automatic rollback.

Importing the package registers nothing, so that the SDK (`mechanisms.sdk`), which
evaluates flags with this package's pure domain code, loads no database, worker or other
mechanism. ``mechanisms.flags.registration``, which ``modules.import_all`` imports,
registers the tables, the worker job, the event subscriber and the demo data."""
