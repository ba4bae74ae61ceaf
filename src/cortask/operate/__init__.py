"""Operating Cortask: installing its sidecar, checking its health, running it as a service."""
