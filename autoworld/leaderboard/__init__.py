"""The leaderboard: an SQLite store of runs, robust statistics, tables, exports and plots."""
