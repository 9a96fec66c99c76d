"""Wavegate's REST API (/api/v1/), its personal tokens, and its OpenAPI schema.

The API is another door to the same rooms: its views call the apps' own action functions and
access rules (rollout.actions, rollout.access, preflight.actions, …), never copies of them.
"""
