"""MyCase: OAuth (auth.py) and the API client (client.py)."""
