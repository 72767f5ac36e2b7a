"""The `ftx` command: one module per command (`ftx/cli/<command>.py`), dispatched by `ftx.cli.main:main`."""
