"""CIS: the DAG engine that runs build and test pipelines."""
