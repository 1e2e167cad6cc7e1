-- Compaction, a fold: how many of the live deltas' orders ({deltas}) may have a row in the base
-- outside the dates the deltas touch. A fold rewrites those dates, ranking each order's
-- delta rows with its base row there; it must look for an order in every other date only when
-- the order may live elsewhere: none of its delta rows starts with its creation (`new_order`,
-- see compact_delta.sql) and the base holds no row or tombstone of it in the touched dates (its
-- created_at moved, a Keys-only REMOVE without a date, a change of an order the lake never saw).
-- Zero in a normal fold, so its cost stays the touched dates' order_ids, whatever the history.
-- One slice of the orders at a time ({in_bucket}, a range of order_hash): the touched dates'
-- current versions ({current_rows}: their live rows and tombstones) are read in the buckets that
-- overlap it, so a date too big to read at once is read a bucket at a time.
WITH delta AS (
    SELECT order_id, new_order
    FROM {database}.orders_delta
    WHERE {deltas} AND {in_bucket}
),
in_touched_dates AS (
    SELECT order_id
    FROM {database}.orders_latest_versions
    WHERE {current_rows} AND order_id IN (SELECT order_id FROM delta)
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
