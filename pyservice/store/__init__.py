"""PostgreSQL: the engine's system of record (migrations, books, the input journal, recovery, the projector)."""
