-- Reconciliation by keys: orders_latest rows of a few order_date partitions ({where} names them,
-- and the orders when looking up a sample of the table), at most {limit} of them, random ones.
-- `latest` is the view, or its SQL for one slice of the orders (a range of order_hash).
SELECT {latest_columns}, order_date, false AS is_deleted
FROM {latest}
WHERE {where}
ORDER BY random()
LIMIT {limit}
