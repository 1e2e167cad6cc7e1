-- sales_by_product_hourly of dates read a slice of the orders at a time (sales_ops/curated/
-- rollups.py): the slices' sums, written to the scratch table by
-- rollup_by_date_sales_by_product_hourly.sql, added up into version {version}. One row per key, as
-- one statement over all the orders gives: every figure is a count or a sum.
SELECT
    order_hour,
    product_id,
    product_name,
    category,
    sum(orders) AS orders,
    sum(sales) AS sales,
    sum(units) AS units,
    sum(total_sales) AS total_sales,
    order_date,
    {version} AS v
FROM {database}.sales_by_product_hourly__slices
WHERE v IN ({slices})
GROUP BY order_hour, product_id, product_name, category, order_date
