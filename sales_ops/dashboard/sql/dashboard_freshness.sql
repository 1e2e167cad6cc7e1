-- Dashboard: the newest change the live state reflects (its event time, as in the raw event).
SELECT max(last_event_time) AS newest_event_time, count(*) AS live_orders
FROM {database}.orders_live
