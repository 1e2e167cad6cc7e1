-- Check: order_id is unique in orders_latest, over {scope}: the order_date partitions the last
-- compaction rewrote or changed (TRUE with `check --full`: the whole table). `latest` is the view,
-- or its SQL for one slice of the orders (a range of order_hash): counts of disjoint slices add up.
SELECT count(*) AS row_count, count(DISTINCT order_id) AS order_count
FROM {latest}
WHERE {scope}
