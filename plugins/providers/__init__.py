"""Built-in provider plugins: one backend wire format each, pure translation plus auth."""
