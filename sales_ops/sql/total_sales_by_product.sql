-- Sales per product from the latest state (updates counted once, deleted orders gone).
-- A sale is a live order whose status is not CANCELLED or RETURNED; amounts are order_total.
SELECT
    product_name,
    count(*) AS orders,
    sum(quantity) AS units,
    sum(order_total) AS total_sales
FROM {database}.orders_latest
WHERE status NOT IN ('CANCELLED', 'RETURNED')
GROUP BY product_name
ORDER BY total_sales DESC, product_name
