"""The commands of `mycase-sync`, one module per family; cli.py puts them together."""
