"""*What* runs next (ninja's Plan): pure decisions over a DAG and its task states, no I/O, no clock."""
