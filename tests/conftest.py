"""Test tiers are pytest markers (pyproject.toml): unmarked tests are pure; `spark` tests share the
session in tests/spark/conftest.py; `integration` tests start the real stack through
tests/integration/conftest.py (`plantlake up`, idempotent)."""
