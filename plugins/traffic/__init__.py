"""Built-in traffic plugins: routing plans and backend health."""
