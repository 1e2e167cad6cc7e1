-- Dashboard: stock left per product from the inventory_status rollup, lowest first.
SELECT product_name, category, opening_stock, stock_left, units_sold_1h, units_sold, as_of
FROM {database}.inventory_status
ORDER BY stock_left, product_name
