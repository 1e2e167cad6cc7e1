-- Sales per product from the latest state (updates counted once, deleted orders gone).
-- A sale is a live order not cancelled or returned (sales_ops.schema); amounts are order_total.
SELECT
    product_name,
    count(*) AS orders,
    sum(quantity) AS units,
    sum(order_total) AS total_sales
FROM {database}.orders_latest
WHERE {is_sale}
GROUP BY product_name
ORDER BY total_sales DESC, product_name
