-- Compaction, step 1b: the order_date partitions holding these orders (for Keys-only REMOVEs).
SELECT DISTINCT order_date
FROM {database}.orders_latest
WHERE order_id IN ({order_ids})
