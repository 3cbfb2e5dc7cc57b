"""ivytui: watch and drive a PostgreSQL/IvorySQL operator v4 -> v5 move through a standby cluster."""

__version__ = "0.1.0"
