"""The JVM-free lake reader: Delta tables as Arrow or pandas for notebooks, the workbench and
`plantlake export`, through delta-rs and DuckDB (no Spark).

    from plantlake.lake import read_table
    quarantine = read_table("silver.quarantine", asset="site1/line1/pump1",
                            since=datetime(2026, 11, 27, 8, tzinfo=UTC), limit=100)
"""

from plantlake.lake.export import ExportResult, export_table
from plantlake.lake.reader import read_arrow, read_table
from plantlake.lake.tables import TableInfo, table_info, time_column

__all__ = [
    "ExportResult", "TableInfo", "export_table", "read_arrow", "read_table", "table_info",
    "time_column",
]  # fmt: skip
