"""Row-at-a-time Spark UDFs (``@udf``), run over Arrow columns with Spark's own conversions.

    run       RowUDF: the user's row function and how Spark would call it (classic
              or Arrow-optimized), as one picklable callable: Arrow columns in,
              one Arrow column out. It runs on a node's workers (and in-process
              when accelerate falls back), so it imports no driver code.
    classic   the classic (pickled) path's conversions, in and out

Both import pyspark: a row UDF comes from Spark, and pyspark is installed where
its rows run. The Spark side (quiver._accel.rows) builds the RowUDF.
"""
