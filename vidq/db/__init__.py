"""Tables, migrations, and the few queries that need a dialect of their own."""
