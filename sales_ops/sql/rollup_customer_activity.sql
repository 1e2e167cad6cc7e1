-- Rollup: per customer, live orders, sales, spend, and first and last order time.
SELECT
    customer_id,
    count(*) AS orders,
    count_if(status NOT IN ('CANCELLED', 'RETURNED')) AS sales,
    sum(CASE WHEN status NOT IN ('CANCELLED', 'RETURNED') THEN order_total ELSE 0 END) AS spend,
    CAST(min(from_iso8601_timestamp(created_at)) AS TIMESTAMP) AS first_order_at,
    CAST(max(from_iso8601_timestamp(created_at)) AS TIMESTAMP) AS last_order_at
FROM {database}.orders_latest
GROUP BY customer_id
