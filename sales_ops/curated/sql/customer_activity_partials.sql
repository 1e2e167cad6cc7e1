-- Rollup partials: per customer and order_date, live orders, sales, spend, and first and last
-- order time. Partitioned by order_date and by a bucket of customer_id ({buckets} buckets; this
-- statement writes buckets {bucket_low} to {bucket_high}), rebuilt only for the dates whose orders
-- changed ({dates}, into version {version}); customer_activity adds up those of its window, a range
-- of buckets per statement (customer_activity_pass.sql, sales_ops/curated/customers.py). It reads
-- orders_latest, or one slice of its orders where the dates are too big for one statement; the
-- slices' partials are then added up (customer_activity_partials_merge.sql).
SELECT
    customer_id,
    count(*) AS orders,
    count_if({is_sale}) AS sales,
    sum(CASE WHEN {is_sale} THEN order_total ELSE 0 END) AS spend,
    CAST(min({created_ts}) AS TIMESTAMP) AS first_order_at,
    CAST(max({created_ts}) AS TIMESTAMP) AS last_order_at,
    order_date,
    {version} AS v,
    mod({customer_hash}, {buckets}) AS bucket
FROM {latest}
WHERE order_date IN ({dates}) AND mod({customer_hash}, {buckets}) BETWEEN {bucket_low} AND {bucket_high}
GROUP BY customer_id, order_date
