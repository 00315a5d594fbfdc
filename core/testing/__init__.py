"""Test support for modelway and its plugins: helpers a plugin's own test suite can use."""
