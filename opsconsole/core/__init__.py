"""The domain: states, catalog, store and the one service API both faces call.

Nothing here imports the engine, the CLI, the TUI or any runner library.
"""
