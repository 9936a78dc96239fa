"""Manifest, lock, meta, resolution, SemVer checks, SimHash and fetching."""
