"""Named SQL operations. Each function takes a connection and runs in the caller's transaction."""
