"""Writing orders: the mock shop (`shop`, `sales-ops load`) and synthetic raw history for benchmarks
(`synthetic`)."""
