"""Renderers: decoded summaries and findings -> terminal, Markdown, HTML, JSON. No analysis here."""
