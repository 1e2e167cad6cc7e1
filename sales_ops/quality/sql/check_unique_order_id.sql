-- Check: order_id is unique in orders_latest, over {scope}: the order_date partitions the last
-- compaction rewrote or changed (TRUE with `check --full`: the whole table).
SELECT count(*) AS row_count, count(DISTINCT order_id) AS order_count
FROM {database}.orders_latest
WHERE {scope}
