"""The chengc driver: import graph, reproducible builds, action cache, meta."""
