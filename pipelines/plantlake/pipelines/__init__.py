"""plantlake.pipelines: the medallion layers on Spark Structured Streaming and Delta Lake."""
