"""PostgreSQL protocol 3.0: sans-IO codec, authentication and replies."""
