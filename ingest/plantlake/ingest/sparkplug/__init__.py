"""plantlake.ingest.sparkplug: MQTT Sparkplug B 3.0 payload codec, primary host state machine and its MQTT client."""
