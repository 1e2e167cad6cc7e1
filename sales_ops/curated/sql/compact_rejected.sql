-- Compaction: the changes of a pass (or of a rebuild's pass) that break the contract of §2.1
-- (docs/design.md §2.5, "Rejected changes"), by name: the order, the event and the first rule
-- broken. They never reach orders_latest and never stop the other changes; the
-- `rejected_changes` check lists them.
INSERT INTO {database}.orders_rejected
SELECT
    CAST(order_id AS VARCHAR) AS order_id,
    CAST(event_id AS VARCHAR) AS event_id,
    {sequence_order} AS sequence_number,
    CAST(event_time AS VARCHAR) AS event_time,
    {reject_reason} AS reason,
    'raw_orders' AS source,
    {delta} AS delta
FROM {database}.raw_orders
WHERE ({new_events}) AND {reject_reason} IS NOT NULL
UNION ALL
SELECT
    CAST(order_id AS VARCHAR), CAST(event_id AS VARCHAR), NULL, CAST(event_time AS VARCHAR),
    {reject_reason}, 'orders_baseline', {delta}
FROM {database}.orders_baseline
WHERE ({new_snapshots}) AND {reject_reason} IS NOT NULL
