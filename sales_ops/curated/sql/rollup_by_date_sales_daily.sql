-- Rollup partials behind the dashboard's all-time figures: per order_date, and within it per
-- product name, category, channel and region (`kind`, `value`; the day as a whole is kind 'all'),
-- live orders, sales, units and amount sold: dashboard_live.sql's groups, by date. Partitioned by
-- order_date and rebuilt only for the dates whose orders changed ({dates}, into version
-- {version}); sales_totals adds them up (rollup_total_sales_totals.sql). It reads orders_latest,
-- or one slice of its orders where the dates are too big for one statement; the slices' sums are
-- then added up (rollup_merge_sales_daily.sql).
WITH day AS (
    SELECT *, {is_sale} AS is_sale
    FROM {latest}
    WHERE order_date IN ({dates})
)
SELECT
    CASE
        WHEN grouping(product_name) = 0 THEN 'product'
        WHEN grouping(category) = 0 THEN 'category'
        WHEN grouping(channel) = 0 THEN 'channel'
        WHEN grouping(region) = 0 THEN 'region'
        ELSE 'all'
    END AS kind,
    coalesce(product_name, category, channel, region) AS value,
    count(*) AS live_orders,
    count_if(is_sale) AS orders,
    coalesce(sum(CASE WHEN is_sale THEN quantity END), 0) AS units,
    coalesce(sum(CASE WHEN is_sale THEN order_total END), 0) AS total_sales,
    max(last_event_time) AS newest_event_time,
    order_date,
    {version} AS v
FROM day
GROUP BY GROUPING SETS (
    (order_date, product_name), (order_date, category), (order_date, channel), (order_date, region), (order_date)
)
