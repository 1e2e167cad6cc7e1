"""The Glue catalog: table and partition shapes (`glue`), JSON schema inference (`inference`), and
the crawlers that keep `raw_orders` current (`crawlers`: the Glue crawler and its local stand-in)."""
