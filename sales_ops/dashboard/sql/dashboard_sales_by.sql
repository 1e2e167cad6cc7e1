-- Dashboard: sales by category, by channel and by region, in one scan (GROUPING SETS).
SELECT
    CASE
        WHEN grouping(category) = 0 THEN 'category'
        WHEN grouping(channel) = 0 THEN 'channel'
        ELSE 'region'
    END AS dimension,
    coalesce(category, channel, region, 'unknown') AS value,
    count(*) AS orders,
    sum(order_total) AS total_sales
FROM {database}.orders_live
WHERE {is_sale}
GROUP BY GROUPING SETS ((category), (channel), (region))
ORDER BY 1, 4 DESC
