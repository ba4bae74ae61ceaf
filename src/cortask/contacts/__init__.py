"""Who may reach the agent, independent of any channel: phone numbers in E.164 and the access rules.

Both the store (which keeps trusted contacts) and the channels (which apply the rules to each
message) import this package; it imports neither.
"""
