-- Compaction: rows per order_date of the deltas just written (their files only).
SELECT order_date, count(*) AS row_count
FROM {database}.orders_delta
WHERE delta IN ({deltas})
GROUP BY order_date
