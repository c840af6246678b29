"""quiver.accelerate, in parts (imports point down this list):

    decorator   accelerate(...) and the per-process state of an accelerated function
    nodes       the nodes batches go to: whether each answers, over the shared connection
    infer       the result type, inferred from local runs when ``returns`` is not given
    mapform     map forms of any output length (mapInPandas, mapInArrow) as table calls
    rows        accelerate over a row-at-a-time Spark @udf (its rows run by quiver._rows)
    forms       the call forms (pandas, Arrow, iterators, RecordBatches), adapters, slicing
    pickled     results no Arrow type holds, carried pickled through the node
    frames      what map forms run in the node's workers: MapAdapter, the frames' encoding
    policy      pure: run a batch here or on the node (fallback, the cheap-function switch)

Conversions between pandas and Arrow are quiver._convert, shared with the worker.
"""
