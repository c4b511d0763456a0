"""`copyengine engine`: the hot-path daemon on the venue socket (see docs/protocol.md)."""
