"""plantlake: an Industrial-IoT lakehouse. This package (the `infra/` folder) is the platform core:
configuration, the local service stack, the Spark session factory, contracts and the CLI."""

__version__ = "0.1.0"
