"""Content-addressed storage: CIDs, chunking, UnixFS dag-pb, blockstore, CAR."""
