"""Results: statistics, leaderboard, charts, exports and the panel simulation.

Reads the ratings, never imported by them (dependencies run results → ratings → generation → prompts).
"""
