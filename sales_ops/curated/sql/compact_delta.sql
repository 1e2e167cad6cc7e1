-- Compaction, a cycle: the delta of one pass (docs/design.md §2.5). The latest state, or tombstone,
-- of each order this pass's changes touch, ranked among those changes only: no older state is
-- read, so the statement costs the pass's raw objects and nothing of the history. Readers
-- (orders_latest, a view) merge it with the base and the other live deltas by the same rule, and a
-- fold merges it into the base later. Changes that break §2.1 ({reject_reason}) are left out here
-- and recorded by compact_rejected.sql. The merge rule is compact_orders.sql's. `new_order`: the
-- order's first change here is its creation (an INSERT: DynamoDB had no such item before), so no
-- older row of it can exist in the base (a fold looks only for the others', compact_orphans.sql;
-- a snapshot, which has no sequence number, counts as first, and is no creation).
INSERT INTO {database}.orders_delta
WITH candidates AS (
    SELECT {checked_as_latest}, is_deleted, {checked_order_date} AS order_date, event_type = 'INSERT' AS creates
    FROM {database}.raw_orders
    WHERE ({new_events}) AND {reject_reason} IS NULL
    UNION ALL
    SELECT {checked_as_latest}, is_deleted, {checked_order_date} AS order_date, false AS creates
    FROM {database}.orders_baseline
    WHERE ({new_snapshots}) AND {reject_reason} IS NULL
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
        max(order_date) OVER (PARTITION BY order_id) AS any_order_date,
        first_value(creates) OVER (
            PARTITION BY order_id ORDER BY last_sequence_number ASC NULLS FIRST
        ) AS new_order
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
    is_deleted,
    coalesce(order_date, any_order_date) AS order_date,
    new_order,
    {delta} AS delta
FROM ranked
WHERE rank_in_order = 1
ORDER BY order_id
