"""The application layer: every action a person can take, once, with typed inputs and outputs.

`actions.CortaskApp` does them over `CortaskService` (inside the gateway, or in a CLI command when
no gateway runs); `models` are what they take and give; `client` is how the CLI reaches them.
"""
