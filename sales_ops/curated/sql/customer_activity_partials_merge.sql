-- customer_activity's daily partials of dates read a slice of the orders at a time (sales_ops/
-- curated/rollups.py): the slices' partials, written to the scratch table by
-- customer_activity_partials.sql, added up into version {version}. One row per customer and date,
-- as one statement over all the orders gives (a customer's orders may lie in several slices):
-- every figure is a count, a sum, a min or a max. Buckets {bucket_low} to {bucket_high} of the
-- scratch table (a range whose slices' partials fit one statement).
SELECT
    customer_id,
    sum(orders) AS orders,
    sum(sales) AS sales,
    sum(spend) AS spend,
    min(first_order_at) AS first_order_at,
    max(last_order_at) AS last_order_at,
    order_date,
    {version} AS v,
    bucket
FROM {database}.customer_activity_daily__slices
WHERE v IN ({slices}) AND bucket BETWEEN {bucket_low} AND {bucket_high}
GROUP BY customer_id, order_date, bucket
