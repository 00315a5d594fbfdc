"""Built-in ingress plugins: the client-facing APIs the gateway speaks."""
