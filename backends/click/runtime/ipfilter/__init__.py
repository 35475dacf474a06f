"""The IPFilter / IPClassifier pattern language, compiled to Python.

The syntax is Click's (``elements/ip/ipclassifier.hh``): tcpdump-like
primitives (``src net 10.0.0.0/8``, ``tcp``, ``dst port & 65534 == 22``,
``ip proto 50``, ``icmp type echo``, ``tcp opt syn``, ``ip dscp 46``,
``ip[9]``, ``transp[0:2]``, ``src ether host 02:00:00:00:00:01`` ...)
combined with ``and``/``&&``, ``or``/``||``, ``not``/``!``, ``?:`` and
parentheses; juxtaposition means "and"; a bare value inherits the type of
the previous primitive (``src port 80 or 81``).  Port, ICMP type, TCP
option and transport-field primitives only hold on first fragments of TCP
or UDP (resp. the named protocol).

:func:`compile_rules` turns a list of patterns into one Python function
``f(packet) -> output`` (``-1``: no pattern matched), generated as source
text once, at load time.  The function reads the IP header where the
packet's IP header annotation points, the MAC header annotation for
``ether host``.

Modules: :mod:`.names` (protocol, port, ICMP and TCP option names, header
fields), :mod:`.primitives` (a primitive and its value words),
:mod:`.parser` (tokens and expressions), :mod:`.codegen`
(:func:`~.codegen.compile_rules`) and :mod:`.classifier` (Click
``Classifier`` byte patterns, :func:`~.classifier.compile_classifier`).
"""
