"""The page's style and script, inlined into every page (nothing is loaded from elsewhere), and
the Content-Security-Policy that allows exactly them: each by its SHA-256 hash.

The style carries the brand's colour, so its hash is per colour (a few brands: kept).
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from urllib.parse import urlsplit

__all__ = ["SCRIPT", "policy", "style"]

_STYLE = """\
:root{--c:%(color)s;--ink:#1f2328;--dim:#59636e;--line:#d1d9e0;--bg:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;\
color:var(--ink);background:var(--bg);overflow-wrap:anywhere}
header{display:flex;align-items:center;gap:.6rem;padding:.75rem 1rem;background:var(--c);\
color:#fff}
header .shop{font-weight:600;font-size:1.1rem;flex:1}
.logo{border-radius:6px;background:#fff;object-fit:contain}
.langs a{color:#fff;margin-left:.5rem;text-decoration:none;opacity:.75}
.langs a[aria-current]{opacity:1;font-weight:700;text-decoration:underline}
main{max-width:36rem;margin:0 auto;padding:1rem}
.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:1rem;\
margin:0 0 1rem}
h1,h2{font-size:1.1rem;margin:0 0 .5rem}
.hi{margin:0 0 .75rem;color:var(--dim)}
.now .status{font-size:1.4rem;font-weight:700;margin:0;color:var(--c)}
.now .when,.estimate{margin:.25rem 0 0;color:var(--dim)}
.estimate b{color:var(--ink)}
.facts{display:grid;grid-template-columns:auto 1fr;gap:.4rem 1rem}
.facts dt{color:var(--dim)}
.facts dd{margin:0;font-weight:600}
.awb{font-family:ui-monospace,monospace;user-select:all}
button,.button{font:inherit;border:1px solid var(--c);color:var(--c);background:#fff;\
border-radius:6px;padding:.1rem .6rem;cursor:pointer;text-decoration:none;display:inline-block}
form button{background:var(--c);color:#fff;padding:.5rem 1rem;margin-top:1rem;width:100%%}
.timeline{list-style:none;margin:0;padding:0}
.timeline li{position:relative;padding:0 0 .9rem 1.4rem;border-left:2px solid var(--line);\
margin-left:.4rem}
.timeline li:last-child{border-color:transparent;padding-bottom:0}
.timeline li::before{content:"";position:absolute;left:-.45rem;top:.35rem;width:.8rem;\
height:.8rem;border-radius:50%%;background:var(--line)}
.timeline li:first-child::before{background:var(--c)}
.timeline b,.timeline time,.timeline .note{display:block}
.timeline time,.timeline .note{color:var(--dim);font-size:.9rem}
#proof a{margin-right:1rem}
label{display:block;margin:.75rem 0 .25rem;font-weight:600}
input{font:inherit;width:100%%;padding:.5rem;border:1px solid var(--line);border-radius:6px}
.notice{background:#fff4e5;border:1px solid #f0c36d;border-radius:6px;padding:.5rem .75rem}
footer{max-width:36rem;margin:0 auto;padding:0 1rem 2rem}
.chat{display:block;text-align:center;background:#25d366;color:#fff;border-radius:8px;\
padding:.7rem;font-weight:600;text-decoration:none}
"""

SCRIPT = (
    "document.querySelectorAll('button[data-copy]').forEach(function(b){"
    "if(!navigator.clipboard)return;b.hidden=false;"
    "b.addEventListener('click',function(){navigator.clipboard.writeText(b.dataset.copy)"
    ".then(function(){b.textContent=b.dataset.done})})})"
)
"""The AWB's copy button: shown only where the clipboard can be written; without JavaScript
the AWB stays plain text, selected whole by one tap (``user-select: all``)."""


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@lru_cache(maxsize=64)
def style(color: str) -> tuple[str, str]:
    """The page's style in `color`, and its CSP hash."""
    text = _STYLE % {"color": color}
    return text, _hash(text)


_SCRIPT_HASH = _hash(SCRIPT)


def policy(style_hash: str, logo_url: str | None) -> str:
    """The page's Content-Security-Policy: nothing but its own inline style and script, and
    the brand's logo; forms post to this origin only; no framing."""
    images = "'none'"
    if logo_url:
        parts = urlsplit(logo_url)
        images = f"{parts.scheme}://{parts.netloc}"
    return (
        f"default-src 'none'; style-src {style_hash}; script-src {_SCRIPT_HASH};"
        f" img-src {images}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
