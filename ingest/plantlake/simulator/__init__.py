"""plantlake.simulator: a deterministic simulated plant and its devices on real protocols."""
