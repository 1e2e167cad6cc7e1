-- Rollup: per product and hour of order creation, live orders, sales, units and amount sold.
-- Partitioned by order_date: a build recomputes only the dates whose orders changed ({dates}: a
-- new base version or a new delta since the last build), each into a new version {version}.
-- It reads orders_latest, or one slice of its orders where the dates are too big for one
-- statement; the slices' sums are then added up (rollup_merge_sales_by_product_hourly.sql).
SELECT
    CAST(date_trunc('hour', {created_ts}) AS TIMESTAMP) AS order_hour,
    product_id,
    product_name,
    category,
    count(*) AS orders,
    count_if({is_sale}) AS sales,
    sum(CASE WHEN {is_sale} THEN quantity ELSE 0 END) AS units,
    sum(CASE WHEN {is_sale} THEN order_total ELSE 0 END) AS total_sales,
    order_date,
    {version} AS v
FROM {latest}
WHERE order_date IN ({dates})
GROUP BY 1, 2, 3, 4, order_date
