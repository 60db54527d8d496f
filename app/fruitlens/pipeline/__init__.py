"""The Spark stages, in the order a run calls them: images -> decode -> featurize -> reduce ->
classify -> evaluate, and plots of their results. Each takes and returns DataFrames (or plain
values), never writes outputs, and can be called alone on a SparkSession."""
