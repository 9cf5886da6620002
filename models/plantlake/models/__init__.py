"""plantlake.models: MLflow training, promotion with aliases, scoring and work orders (models layer)."""
