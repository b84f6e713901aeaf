"""Docs: decision docs that are written, checked, read and decided with care.

The registry (versions, statuses, links, search) and its reviews (anchored comments,
questions that block a decision, review meetings, reading load) are decision 0016.
Importing the package registers its tables, its worker jobs and its demo data."""

from mechanisms.docs import demo, jobs, tables  # noqa: F401
