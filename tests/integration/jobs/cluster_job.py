"""A small plantlake job for the standalone cluster: write a Delta table, read it back, check it."""

import sys

from pyspark.sql import functions as F

from plantlake.adapters.spark import get_spark

out = sys.argv[1]
spark = get_spark(app_name="plantlake-cluster-test")
print(f"master={spark.sparkContext.master}")
df = spark.range(0, 10_000, numPartitions=4).withColumn("bucket", F.col("id") % 7)
df.write.format("delta").mode("overwrite").save(out)
total = spark.read.format("delta").load(out).agg(F.sum("id")).first()[0]
assert total == sum(range(10_000)), total
print(f"rows=10000 sum={total}")
spark.stop()
