"""Docs: decision docs that are written, checked, read and decided with care."""
