"""Example configurations; gateway.yaml is the packaged default."""
