"""Docs: decision docs that are written, checked, read and decided with care.

The registry (versions, statuses, links, search) and its reviews (anchored comments,
questions that block a decision, review meetings, reading load) are decision 0016.

Importing the package registers nothing: `mech doc check` imports it from pre-commit
hooks and CI, where the database, the worker and the other mechanisms would only cost
start-up time. Its tables, worker jobs and demo data are registered by
``mechanisms.docs.registration``, which ``modules.import_all`` imports."""
