"""framewatch."""
