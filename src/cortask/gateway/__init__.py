"""The gateway: REST API, live events and the web UI, in front of the Cortask service."""
