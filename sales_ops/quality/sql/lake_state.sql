-- Reconciliation and backfill: each order's latest state in the lake. Live orders from
-- orders_latest, and the current tombstones (deleted orders) of each order_date partition.
SELECT {latest_columns}, order_date, false AS is_deleted
FROM {database}.orders_latest
UNION ALL
SELECT {latest_columns}, order_date, true AS is_deleted
FROM {database}.orders_latest_versions
WHERE {current_tombstones}
