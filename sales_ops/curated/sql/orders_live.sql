-- orders_live: the latest state of every order now, merged at read time (docs/design.md §12).
-- orders_latest (the compacted base and deltas) plus the raw events of the tail the compaction has
-- not necessarily merged yet ({raw_tail}: dt/hour partitions from the watermark's hour minus a
-- margin on, so the engine reads only those). Only the orders the tail touches are ranked: the
-- tail's best event per order (compact_delta.sql's rule; changes that break §2.1 left out, as
-- compaction leaves them out) is joined to orders_latest by key, and wins when its sequence number
-- is greater (or equal, for a REMOVE) than the row's; every other row passes through untouched.
-- Reading a compacted event again is harmless: it ties with its own row. Deleted orders are left
-- out. `latest` is the orders_latest view, or its SQL for some order_dates only (the dashboard).
WITH tail AS (
    SELECT {checked_as_latest}, is_deleted, {checked_order_date} AS order_date
    FROM {database}.raw_orders
    WHERE ({raw_tail}) AND {reject_reason} IS NULL
),
ranked AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY order_id
            ORDER BY last_sequence_number DESC, is_deleted DESC, last_event_time DESC, updated_at DESC
        ) AS rank_in_order
    FROM tail
),
tail_best AS (
    SELECT * FROM ranked WHERE rank_in_order = 1
),
joined AS (
    SELECT
        l.*,
        t.order_id IS NOT NULL AND (
            l.order_id IS NULL
            OR l.last_sequence_number IS NULL
            OR t.last_sequence_number > l.last_sequence_number
            OR (t.last_sequence_number = l.last_sequence_number AND t.is_deleted)
        ) AS tail_wins,
        {tail_columns},
        t.is_deleted AS t_is_deleted
    FROM {latest} AS l
    FULL OUTER JOIN tail_best AS t ON l.order_id = t.order_id
)
SELECT {live_columns}
FROM joined
WHERE (tail_wins AND NOT t_is_deleted) OR (NOT tail_wins AND order_id IS NOT NULL)
