"""Click backend: the Click configuration language parser/checker (backends.click.lang) and its element table."""
