"""mitmproxy addons that hand each flow to modelway's engine."""
