"""Click backend: the Click configuration language parser/checker (clicklang) and its element table."""
