"""plantlake.ingest: edge processes that read plant protocols and produce canonical records to Kafka."""
