"""SQL analysis: statements in, facts out; knows nothing of the wire."""
