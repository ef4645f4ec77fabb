"""`framewatch serve`: the JSON API over the sink's files (docs/read-model.md)."""
