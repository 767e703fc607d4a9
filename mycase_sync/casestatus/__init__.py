"""Case Status partner API client."""
