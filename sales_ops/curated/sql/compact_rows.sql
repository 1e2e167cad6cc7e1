-- Compaction, step 3: live rows per partition written by this run's versions (Parquet footers only);
-- the caller keeps the versions each date ends on.
SELECT order_date, v, count(*) AS row_count
FROM {database}.orders_latest_versions
WHERE v IN ({versions})
GROUP BY order_date, v
