"""Shared foundations: errors, atomic file writes, paths. Imports nothing else of ours."""
