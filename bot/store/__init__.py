"""The database: engine and transactions, the schema, migrations, and one module per use case (the SQL of each rule)."""
