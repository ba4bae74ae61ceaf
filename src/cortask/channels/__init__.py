"""Messaging channels that connect people to their Cortask agent."""
