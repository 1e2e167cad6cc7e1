-- Compaction, a fold or a rebuild's pass: rewrite a batch of order_date partitions of the base as
-- a new version (docs/design.md §2.5). Candidates per order: the new rows (a rebuild's raw events
-- and baseline rows that keep §2.1, or a fold's live deltas), the rows of the version each date of
-- the batch is merged into (its current one, or the one an earlier pass wrote; none in a rebuild)
-- and that version's tombstones (deleted orders, kept so that a late or replayed older event can
-- never bring a deleted order back), and the base rows of the new rows' orders in the other
-- touched dates (the current base in a fold, this run's earlier passes in a rebuild), so that an order whose created_at moved is ranked with its old row.
-- The merge rule, in two steps:
-- 1. Among stream events (a sequence number) the greatest sequence number wins (zero-padded to
--    40 digits in sales_ops/schema.py, so strings compare as the numbers do); ties are the same
--    event seen twice. Among snapshots (no sequence number) the latest export wins.
-- 2. The best event beats the best snapshot when its event_time is at or after the export time (a
--    change made after the export); otherwise the snapshot wins (it holds every earlier change).
--    Sequence numbers say nothing about export times: this compares times only across the kinds.
-- The winner's order_date is the order's partition (a Keys-only REMOVE, which has none, takes the
-- date of the row it deletes): rows of this batch's dates are written, live winners to
-- v=<version>, deleted ones to v=<version>-deleted; an order whose winner lives in another date is
-- left out here, so it exists once. Idempotent: the same candidates give the same winners.
-- One bucket at a time: every candidate is of an order whose order_hash lies in {in_bucket} (the
-- bucket of the dates' versions read here), so an order is ranked whole, and the rows are written
-- under {bucket}: that bucket, or its halves, quarters… for a date grown too big for one.
INSERT INTO {database}.orders_latest_versions
WITH new_rows AS (
    SELECT {checked_as_latest}, is_deleted, {checked_order_date} AS order_date
    FROM {database}.raw_orders
    WHERE ({new_events}) AND {reject_reason} IS NULL AND {in_bucket}
    UNION ALL
    SELECT {checked_as_latest}, is_deleted, {checked_order_date} AS order_date
    FROM {database}.orders_baseline
    WHERE ({new_snapshots}) AND {reject_reason} IS NULL AND {in_bucket}
    UNION ALL
    SELECT {latest_columns}, is_deleted, order_date
    FROM {database}.orders_delta
    WHERE {deltas} AND {in_bucket}
),
base_rows AS (
    SELECT {latest_columns}, v LIKE '%-deleted' AS is_deleted, order_date
    FROM {database}.orders_latest_versions
    WHERE {current_rows}
    UNION ALL
    SELECT {latest_columns}, false AS is_deleted, order_date
    FROM {database}.orders_base
    WHERE {with_base} AND order_date NOT IN ({dates}) AND order_id IN (SELECT order_id FROM new_rows)
    UNION ALL
    SELECT {latest_columns}, true AS is_deleted, order_date
    FROM {database}.orders_tombstones
    WHERE {with_base} AND order_date NOT IN ({dates}) AND order_id IN (SELECT order_id FROM new_rows)
    UNION ALL
    SELECT {latest_columns}, v LIKE '%-deleted' AS is_deleted, order_date
    FROM {database}.orders_latest_versions
    WHERE v IN ({run_versions}) AND order_date NOT IN ({dates})
      AND order_id IN (SELECT order_id FROM new_rows)
),
candidates AS (
    SELECT * FROM new_rows
    UNION ALL
    SELECT * FROM base_rows
),
best_of_kind AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY order_id, last_sequence_number IS NULL
            ORDER BY last_sequence_number DESC,
                     CASE WHEN last_sequence_number IS NULL THEN last_event_time END DESC,
                     is_deleted DESC, last_event_time DESC, updated_at DESC
        ) AS rank_in_kind,
        max(order_date) OVER (PARTITION BY order_id) AS any_order_date
    FROM candidates
),
ranked AS (
    SELECT
        *,
        coalesce(order_date, any_order_date) AS final_order_date,
        row_number() OVER (
            PARTITION BY order_id
            ORDER BY from_iso8601_timestamp(last_event_time) DESC, last_sequence_number IS NULL
        ) AS rank_in_order
    FROM best_of_kind
    WHERE rank_in_kind = 1
)
SELECT
    {latest_columns},
    final_order_date AS order_date,
    CASE WHEN is_deleted THEN {deleted_version} ELSE {version} END AS v,
    {bucket} AS bucket
FROM ranked
WHERE rank_in_order = 1 AND final_order_date IN ({dates})
ORDER BY order_id
