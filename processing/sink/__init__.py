"""The sink: framed items, aggregates, alerts and items from Kafka to Parquet (docs/read-model.md)."""
