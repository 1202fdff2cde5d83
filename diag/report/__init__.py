"""Renderers: decoded summaries and findings -> terminal, Markdown, HTML, JSON. No analysis here.

- ``pcap_text.py``: the terminal view of ``diag pcap``.
- ``diag report`` (docs/report.md): ``cli.py`` (the command; the only module here that calls the
  analyze stage), ``data.py`` (what a report shows besides the findings, read from the bundle and
  the facts), ``timeline.py`` (BGP lanes from the captures), ``svg.py`` (topology and timeline
  pictures), ``html.py``, ``markdown.py``, ``jsondoc.py`` (the renderers: the explain JSON
  document + ``ReportData`` -> text), ``output.py`` (format by extension, atomic write).

Renderers never import ``diag.analyze``, ``diag.collect`` or ``diag.lab``.
"""
