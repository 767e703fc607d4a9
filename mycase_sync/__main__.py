"""Allow `python -m mycase_sync`."""
from mycase_sync.cli import main

main()
