"""`copyengine engine`: the hot-path daemon on the venue socket (see pyservice/PROTOCOL.md)."""
