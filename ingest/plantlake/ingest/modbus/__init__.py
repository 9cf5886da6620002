"""Modbus TCP at the edge: register maps, register decoding and the polling client (ingest layer)."""
