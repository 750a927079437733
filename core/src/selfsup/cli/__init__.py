"""The selfsup command line: one module per command group."""
