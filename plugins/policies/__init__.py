"""Built-in policy plugins: enrichment and guards, applied per route."""
