"""The OpenAI Responses API (`POST /v1/responses`) as a client-facing API, for every backend."""
