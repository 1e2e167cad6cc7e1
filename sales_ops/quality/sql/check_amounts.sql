-- Check: amounts positive and order_total = quantity × unit_price (to the cent), on the rows the
-- last compaction wrote ({new_rows}: its deltas' live rows, or the partitions a rebuild wrote), or
-- on the whole of orders_latest with `check --full`.
WITH checked AS (
    SELECT order_id, quantity, unit_price, order_total
    FROM {database}.orders_delta
    WHERE {new_deltas} AND NOT is_deleted
    UNION ALL
    SELECT order_id, quantity, unit_price, order_total
    FROM {database}.orders_latest
    WHERE {new_rows}
)
SELECT
    count(*) AS row_count,
    count_if(quantity IS NULL OR quantity < 1) AS bad_quantity,
    count_if(unit_price IS NULL OR unit_price <= 0) AS bad_unit_price,
    count_if(order_total IS NULL OR order_total <= 0) AS bad_order_total,
    count_if(order_total <> CAST(quantity * unit_price AS DECIMAL(12, 2))) AS inconsistent_total,
    min(
        CASE
            WHEN quantity IS NULL OR quantity < 1
              OR unit_price IS NULL OR unit_price <= 0
              OR order_total IS NULL OR order_total <= 0
              OR order_total <> CAST(quantity * unit_price AS DECIMAL(12, 2))
            THEN order_id
        END
    ) AS example_order_id
FROM checked
