"""The Click configuration language: what fsc writes for module hosts and the runtime reads.

Split by concern:

* :mod:`.ast` -- the typed AST (frozen dataclasses carrying source lines that ``==`` ignores),
  :class:`~.ast.ClickSyntaxError` and :class:`~.ast.ClickProblem`.
* :mod:`.args` -- configuration strings: :func:`~.args.split_args` splits arguments the way Click does
  (commas inside parentheses, brackets, braces and quotes do not split; comments are removed) and
  :func:`~.args.substitute` expands ``$variables``.
* :mod:`.parser` -- :func:`~.parser.parse_config` parses Click text (grammar ``backends/click/click.lark``,
  Lark LALR) into the AST.
* :mod:`.printer` -- :func:`~.printer.format_config` prints an AST back; ``parse_config(format_config(c)) == c``.
* :mod:`.element_table` -- the element classes of ``backends/click/elements.toml`` (port counts,
  push/pull, flow codes).
* :mod:`.checker` -- :func:`~.checker.check_config` checks a configuration with the rules Click itself applies
  when it builds a router (lexer, ``Router::check_hookup_range``, ``check_push_and_pull``,
  ``check_hookup_completeness``) plus the configuration-dependent output counts of the classifiers; compound
  elements (``elementclass``) are flattened as Click does, so port and push/pull problems are found through them.
"""
