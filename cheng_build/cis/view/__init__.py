"""The views of a run: the terminal view and the 6767 web view (``web_static/`` is its page)."""
