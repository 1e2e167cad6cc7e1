"""The curated zone: `orders_latest` (compaction, its lock and state) and the rollups built on it."""
