"""Cortask: link your own WhatsApp account to your AI agent."""
