-- Compaction, a fold or a rebuild's pass: the order_date partitions its new rows touch. Those are
-- the dates of the new rows (raw events and baseline rows of a rebuild's pass, or the live
-- deltas of a fold), and the dates where the base already holds one of their orders (the current
-- base in a fold, the versions this rebuild wrote so far), so that an order whose created_at moved to another day (or that was
-- deleted and created again on another day) leaves its old partition: an order exists once.
WITH new_rows AS (
    SELECT CAST(order_id AS VARCHAR) AS order_id, {checked_order_date} AS order_date
    FROM {database}.raw_orders
    WHERE ({new_events}) AND {reject_reason} IS NULL
    UNION ALL
    SELECT CAST(order_id AS VARCHAR), {checked_order_date}
    FROM {database}.orders_baseline
    WHERE ({new_snapshots}) AND {reject_reason} IS NULL
    UNION ALL
    SELECT order_id, order_date
    FROM {database}.orders_delta
    WHERE {deltas}
)
SELECT DISTINCT order_date
FROM (
    SELECT order_date FROM new_rows
    UNION ALL
    SELECT order_date
    FROM {database}.orders_base
    WHERE {with_base} AND order_id IN (SELECT order_id FROM new_rows)
    UNION ALL
    SELECT order_date
    FROM {database}.orders_tombstones
    WHERE {with_base} AND order_id IN (SELECT order_id FROM new_rows)
    UNION ALL
    SELECT order_date
    FROM {database}.orders_latest_versions
    WHERE v IN ({run_versions}) AND order_id IN (SELECT order_id FROM new_rows)
)
WHERE order_date IS NOT NULL
