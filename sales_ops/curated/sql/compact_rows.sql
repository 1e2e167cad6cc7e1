-- Compaction, step 3: live rows written by a version (Parquet footers only).
SELECT count(*) AS row_count
FROM {database}.orders_latest_versions
WHERE v = {version}
