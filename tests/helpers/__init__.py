"""Shared test helpers: statistics (`stats`), small datasets and collate helpers, and the
entry points of the processes some tests spawn (ranks, ring lifecycle)."""
