"""Shared fixtures: every test gets an isolated PLANTLAKE_HOME unless it asks for the real stack."""
