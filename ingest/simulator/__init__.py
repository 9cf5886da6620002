"""plantlake.ingest.simulator: a deterministic simulated plant and its devices on real protocols."""
