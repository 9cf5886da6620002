"""plantlake.app."""
