-- Compaction, step 1: order dates touched by the new raw events and new baseline rows (backfills),
-- and orders with no date in them. An order's created_at never changes, so an order lives in one
-- order_date partition. A REMOVE that carries only Keys has no created_at: such orders come back as
-- orphan_order_id, and the caller looks their partition up in orders_latest (compact_orphans.sql).
SELECT order_date, CASE WHEN order_date IS NULL THEN order_id END AS orphan_order_id
FROM (
    SELECT order_id, max(TRY_CAST(substr(created_at, 1, 10) AS DATE)) AS order_date
    FROM (
        SELECT order_id, created_at
        FROM {database}.raw_orders
        WHERE {new_events}
        UNION ALL
        SELECT order_id, created_at
        FROM {database}.orders_baseline
        WHERE {new_snapshots}
    )
    GROUP BY order_id
)
GROUP BY 1, 2
