"""One module per store of the platform: its schema or indexes, row conversion, writer and read queries."""
