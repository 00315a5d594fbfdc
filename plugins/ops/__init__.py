"""Built-in operations plugins: access log, statistics, admin endpoints."""
