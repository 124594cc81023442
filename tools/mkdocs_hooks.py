"""MkDocs hook: mkdocs-click 0.9 prints click 8.3's "no default" marker of a flag as
``Sentinel.UNSET``; the reference shows "—" there instead."""


def on_page_content(html, page, config, files):
    return html.replace("<code>Sentinel.UNSET</code>", "—").replace("Sentinel.UNSET", "—")
