-- Dashboard: the dates of orders deleted by a change that carries no date of its own (a Keys-only
-- REMOVE: a stream record without OldImage), in the raw tail ({order_ids}) or in a live delta:
-- the date where the base holds the order. It reads orders_base's order_id column of every date,
-- so it runs only while such a change is live (sales_ops/dashboard/snapshot.py): never on a
-- NEW_AND_OLD_IMAGES stream, whose REMOVEs carry the deleted image.
SELECT DISTINCT order_date
FROM {database}.orders_base
WHERE order_id IN ({order_ids})
   OR order_id IN (SELECT order_id FROM {database}.orders_delta WHERE order_date IS NULL)
