"""Backends that speak only the OpenAI Responses API (`api: responses`): the hub's chat
requests, answers and streams translated to and from it."""
