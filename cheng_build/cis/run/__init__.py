"""*How* a run proceeds (ninja's Builder): the engine loop, its SQLite store, the control surface
other processes act through, requests, rollback and the debt of failures."""
