"""modelway's built-in plugins, one module each; loaded by name like third-party plugins."""
