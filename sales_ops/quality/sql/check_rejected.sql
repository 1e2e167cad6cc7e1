-- Check: changes compaction rejected (they break the contract of §2.1), by name, that no later
-- good change of the same order has superseded ({order_ids}: the rejected orders; their current
-- state is looked up by key). A later delete supersedes too: an order written wrongly and then
-- deleted is gone, as its latest change says.
WITH rejected AS (
    SELECT DISTINCT order_id, event_id, sequence_number, event_time, reason, source
    FROM {database}.orders_rejected
),
current_state AS (
    SELECT order_id, last_sequence_number, last_event_time
    FROM {database}.orders_latest
    WHERE order_id IN ({order_ids})
    UNION ALL
    SELECT order_id, last_sequence_number, last_event_time
    FROM {database}.orders_tombstones
    WHERE order_id IN ({order_ids})
    UNION ALL
    SELECT order_id, last_sequence_number, last_event_time
    FROM {database}.orders_delta
    WHERE is_deleted AND order_id IN ({order_ids})
)
SELECT r.order_id, r.event_id, r.event_time, r.reason, r.source
FROM rejected AS r
WHERE NOT EXISTS (
    SELECT 1
    FROM current_state AS c
    WHERE c.order_id = r.order_id
      AND NOT coalesce(c.last_sequence_number < r.sequence_number, c.last_event_time < r.event_time)
)
ORDER BY r.event_time, r.order_id
LIMIT 1000
