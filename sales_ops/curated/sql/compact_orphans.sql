-- Compaction, a fold: how many of the live deltas' orders ({deltas}) may have a row in the base
-- outside the dates the deltas touch ({dates}). A fold rewrites those dates, ranking each order's
-- delta rows with its base row there; it must look for an order in every other date only when
-- the order may live elsewhere: none of its delta rows starts with its creation (`new_order`,
-- see compact_delta.sql) and the base holds no row or tombstone of it in the touched dates (its
-- created_at moved, a Keys-only REMOVE without a date, a change of an order the lake never saw).
-- Zero in a normal fold, so its cost stays the touched dates' order_ids, whatever the history.
WITH delta AS (
    SELECT order_id, new_order
    FROM {database}.orders_delta
    WHERE {deltas}
),
in_touched_dates AS (
    SELECT order_id
    FROM {database}.orders_base
    WHERE order_date IN ({dates}) AND order_id IN (SELECT order_id FROM delta)
    UNION ALL
    SELECT order_id
    FROM {database}.orders_tombstones
    WHERE order_date IN ({dates}) AND order_id IN (SELECT order_id FROM delta)
),
not_created AS (
    SELECT order_id
    FROM delta
    GROUP BY order_id
    HAVING NOT coalesce(bool_or(new_order), false)
)
SELECT count(*) AS orphans
FROM not_created
WHERE order_id NOT IN (SELECT order_id FROM in_touched_dates)
