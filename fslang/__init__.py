"""fslang: the FSL front end (source, parser, AST, diagnostics) and the `fsc` CLI."""
