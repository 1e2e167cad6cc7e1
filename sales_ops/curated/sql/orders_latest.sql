-- orders_latest: one row per live order, its latest change (docs/design.md §2.4, §2.5). A view
-- over the base (orders_base: one version per order_date, rewritten by folds) and the live deltas
-- (orders_delta: what each cycle wrote, not folded yet). Base rows of orders no delta touches pass
-- through untouched; the orders in deltas are ranked among their delta rows, their base row and
-- their base tombstone by compact_orders.sql's rule, deleted ones left out. No window runs over
-- the whole table: the ranking covers the changed orders only, and their base rows are looked up
-- in {delta_dates}, the dates the live deltas touch, written into the text by each compaction
-- that changes them: literals, so that both engines prune the base's partitions before reading
-- (a subquery would be known only while the query runs). Known limit: a replayed change older
-- than an order's base row in another date (its created_at moved, or a Keys-only REMOVE with no
-- date) wins until the next fold, which ranks against every date. `only_dates` is TRUE in the
-- view; a reader that wants some order_dates only (the dashboard, sales_ops/dashboard/snapshot.py)
-- renders the SQL with them, so the base is pruned where it is read. `base` and `tombstones` are
-- orders_base and orders_tombstones, or, for a reader going a slice of the orders at a time
-- (`in_slice`: a range of order_hash, TRUE in the view), the buckets of the dates' pinned current
-- versions that overlap it (docs/design.md §2.5, Buckets): an order's rows all lie in one slice,
-- so each slice's answer is exactly its orders'.
WITH delta AS (
    SELECT {latest_columns}, is_deleted, order_date
    FROM {database}.orders_delta
    WHERE {in_slice}
),
changed AS (
    SELECT DISTINCT order_id FROM delta
),
candidates AS (
    SELECT * FROM delta
    UNION ALL
    SELECT {latest_columns}, false AS is_deleted, order_date
    FROM {base}
    WHERE order_date IN ({delta_dates})
      AND order_id IN (SELECT order_id FROM changed)
    UNION ALL
    SELECT {latest_columns}, true AS is_deleted, order_date
    FROM {tombstones}
    WHERE order_date IN ({delta_dates})
      AND order_id IN (SELECT order_id FROM changed)
),
best_of_kind AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY order_id, last_sequence_number IS NULL
            ORDER BY last_sequence_number DESC,
                     CASE WHEN last_sequence_number IS NULL THEN last_event_time END DESC,
                     is_deleted DESC, last_event_time DESC, updated_at DESC
        ) AS rank_in_kind
    FROM candidates
),
ranked AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY order_id
            ORDER BY from_iso8601_timestamp(last_event_time) DESC, last_sequence_number IS NULL
        ) AS rank_in_order
    FROM best_of_kind
    WHERE rank_in_kind = 1
)
SELECT {latest_columns}, order_date
FROM {base}
WHERE order_id NOT IN (SELECT order_id FROM changed) AND {only_dates}
UNION ALL
SELECT {latest_columns}, order_date
FROM ranked
WHERE rank_in_order = 1 AND NOT is_deleted AND {only_dates}
