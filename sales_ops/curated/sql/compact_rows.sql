-- Compaction, step 3: live rows per partition written by this run's versions (Parquet footers only);
-- the caller keeps the versions each date ends on, and asks for a group of buckets at a time.
SELECT order_date, v, count(*) AS row_count
FROM {database}.orders_latest_versions
WHERE {versions}
GROUP BY order_date, v
