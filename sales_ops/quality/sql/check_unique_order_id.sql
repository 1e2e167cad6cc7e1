-- Check: order_id is unique in orders_latest.
SELECT count(*) AS row_count, count(DISTINCT order_id) AS order_count
FROM {database}.orders_latest
