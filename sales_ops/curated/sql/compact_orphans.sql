-- Compaction, step 1b: the order_date partitions holding these orders (for Keys-only REMOVEs): in the
-- current table (not in a full rebuild) and in what this run's earlier passes wrote. An order lives
-- in one order_date, so an older version of its partition names the same date.
SELECT DISTINCT order_date
FROM (
    SELECT order_id, order_date
    FROM {database}.orders_latest
    WHERE {with_current}
    UNION ALL
    SELECT order_id, order_date
    FROM {database}.orders_latest_versions
    WHERE v IN ({run_versions})
)
WHERE order_id IN ({order_ids})
