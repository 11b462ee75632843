"""Build the dataset from a pipeline run: Parquet splits, loading script data, exports, card."""
