-- The same answer as total_sales_by_product, computed from the raw JSON events (for comparison).
WITH latest AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY order_id ORDER BY {sequence_order} DESC
        ) AS rank_in_order
    FROM {database}.raw_orders
)
SELECT
    product_name,
    count(*) AS orders,
    sum(quantity) AS units,
    sum(CAST(order_total AS DECIMAL(12, 2))) AS total_sales
FROM latest
WHERE rank_in_order = 1 AND NOT is_deleted AND {is_sale}
GROUP BY product_name
ORDER BY total_sales DESC, product_name
