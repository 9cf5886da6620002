"""plantlake.core."""
