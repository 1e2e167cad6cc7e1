-- Distinct products among live orders.
SELECT count(DISTINCT product_id) AS product_count
FROM {database}.orders_live
