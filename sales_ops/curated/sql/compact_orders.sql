-- Compaction, step 2: rewrite a batch of order_date partitions of orders_latest as a new version.
-- Candidates per order: the new raw events of this pass, the new baseline rows (backfills from
-- DynamoDB exports), the rows of the version each touched date is merged into (its current one, or
-- the one an earlier pass of this run wrote; none in a full rebuild), and that version's tombstones
-- (deleted orders, kept so that a late or replayed older event can never bring a deleted order back).
-- The merge rule, in two steps:
-- 1. Among stream events (a sequence number) the greatest sequence number wins (zero-padded to
--    40 digits in sales_ops/schema.py, so strings compare as the numbers do); ties are the same event seen twice. Among snapshots (no
--    sequence number) the latest export wins.
-- 2. The best event beats the best snapshot when its event_time is at or after the export time (a
--    change made after the export); otherwise the snapshot wins (it holds every earlier change).
--    Sequence numbers say nothing about export times: this compares times only across the kinds.
-- Live winners go to v=<version>, deleted ones to v=<version>-deleted. Idempotent: re-running over
-- the same candidates, or over duplicated or reordered ones, picks the same winners.
INSERT INTO {database}.orders_latest_versions
WITH new_events AS (
    SELECT
        {raw_as_latest},
        is_deleted,
        TRY_CAST(substr(created_at, 1, 10) AS DATE) AS order_date
    FROM {database}.raw_orders
    WHERE ({new_events})
      AND (TRY_CAST(substr(created_at, 1, 10) AS DATE) IN ({dates})
           OR TRY_CAST(substr(created_at, 1, 10) AS DATE) IS NULL)
),
new_snapshots AS (
    SELECT
        {raw_as_latest},
        is_deleted,
        TRY_CAST(substr(created_at, 1, 10) AS DATE) AS order_date
    FROM {database}.orders_baseline
    WHERE ({new_snapshots})
      AND TRY_CAST(substr(created_at, 1, 10) AS DATE) IN ({dates})
),
current_rows AS (
    SELECT
        {latest_columns},
        false AS is_deleted, order_date
    FROM {database}.orders_latest_versions
    WHERE {current_rows}
),
tombstones AS (
    SELECT
        {latest_columns},
        true AS is_deleted, order_date
    FROM {database}.orders_latest_versions
    WHERE {tombstones}
),
candidates AS (
    SELECT * FROM new_events
    UNION ALL
    SELECT * FROM new_snapshots
    UNION ALL
    SELECT * FROM current_rows
    UNION ALL
    SELECT * FROM tombstones
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
        max(order_date) OVER (PARTITION BY order_id) AS final_order_date
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
SELECT
    {latest_columns},
    final_order_date AS order_date,
    CASE WHEN is_deleted THEN {deleted_version} ELSE {version} END AS v
FROM ranked
WHERE rank_in_order = 1 AND final_order_date IN ({dates})
ORDER BY order_id
