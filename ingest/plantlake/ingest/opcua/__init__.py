"""plantlake.ingest.opcua: the plant's OPC-UA information model and the edge client that reads it."""
