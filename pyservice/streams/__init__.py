"""Redis Streams: copy fills and rejects for other services, from the committed journal."""
