-- orders_live: the latest state of every order now, merged at read time (docs/design.md, "Live
-- state"). orders_latest (compacted Parquet) plus the raw events of the tail the compaction has not
-- necessarily merged yet ({raw_tail}: dt/hour partitions from the watermark's hour minus a margin
-- on, so the engine reads only those). Per order the candidate with the greatest sequence number
-- wins, as in compact_orders.sql; deleted orders are left out. Reading a compacted event again is
-- harmless: it ties with its own row in orders_latest and gives the same answer.
WITH tail AS (
    SELECT
        {raw_as_latest},
        is_deleted,
        TRY_CAST(substr(created_at, 1, 10) AS DATE) AS order_date
    FROM {database}.raw_orders
    WHERE {raw_tail}
),
candidates AS (
    SELECT {latest_columns}, false AS is_deleted, order_date
    FROM {database}.orders_latest
    UNION ALL
    SELECT * FROM tail
),
ranked AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY order_id
            ORDER BY last_sequence_number DESC, is_deleted DESC, last_event_time DESC, updated_at DESC
        ) AS rank_in_order
    FROM candidates
)
SELECT {latest_columns}, order_date
FROM ranked
WHERE rank_in_order = 1 AND NOT is_deleted
