-- Rollup: per customer, live orders, sales, spend, and first and last order time over the dates
-- of the window: the sum of the daily partials ({partials}: each date's current version), for the
-- customers of buckets {bucket_low} to {bucket_high} of {buckets}. One statement per range of
-- buckets, each reading those buckets' partitions only (docs/design.md §2.7): a customer is in one
-- bucket, so the statements' rows are disjoint and together are the table.
SELECT
    customer_id,
    sum(orders) AS orders,
    sum(sales) AS sales,
    sum(spend) AS spend,
    min(first_order_at) AS first_order_at,
    max(last_order_at) AS last_order_at
FROM {database}.customer_activity_daily__versions
WHERE {partials} AND bucket BETWEEN {bucket_low} AND {bucket_high}
GROUP BY customer_id
