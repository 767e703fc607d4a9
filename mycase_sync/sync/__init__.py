"""The jobs: each one fetches, maps (pure functions), writes, and records in the store."""
