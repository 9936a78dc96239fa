"""cheng-build: package, build and pipeline tooling for the Cheng language."""

__version__ = "0.1.0"
