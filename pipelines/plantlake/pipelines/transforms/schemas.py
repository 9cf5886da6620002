"""Spark schemas derived from the lake contract (the contract itself stays Spark-free)."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql.types import StructField, StructType, _parse_datatype_string

from plantlake.core.contracts import Column


def record_schema(columns: Sequence[Column]) -> StructType:
    """A record contract as a Spark struct; every field nullable so bad input parses to nulls."""
    return StructType([StructField(c.name, _parse_datatype_string(c.type), True) for c in columns])
