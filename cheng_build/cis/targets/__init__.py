"""What ``cis run <arg>`` runs besides a DAG file: the registry of named targets, the built-in
``closedloop`` target (``data/`` holds its example packages) and sketches (one line of intent -> a
DAG from the project's manifests and this machine's capabilities, with a benchmark report)."""
