"""mycase-sync: keep Case Status in step with MyCase, from cron."""

__version__ = "0.1.0"
