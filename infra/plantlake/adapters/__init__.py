"""plantlake.adapters."""
