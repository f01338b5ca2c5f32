"""Pytest support: real servers for a test session (see ``fixtures``)."""
