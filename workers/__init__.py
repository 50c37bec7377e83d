"""The worker role: the TikTok API client, the pollers and the bundled sandbox."""
