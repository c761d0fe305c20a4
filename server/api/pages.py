"""The few HTML pages a browser opens directly: accepting an invitation."""

from __future__ import annotations

import html

from aiohttp import web

_INVITE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Join Tasktimer</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{{font:16px system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}}
label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.4rem}}
button{{margin-top:1rem;padding:.5rem 1rem}}#msg{{margin-top:1rem}}</style></head>
<body><h1>Join Tasktimer</h1>
<form id="f"><label for="name">Your name</label><input id="name" name="name" autocomplete="name">
<label for="password">Choose a password (8 characters or more)</label>
<input id="password" name="password" type="password" minlength="8" required
 autocomplete="new-password">
<button type="submit">Join</button></form><p id="msg" role="status"></p>
<script>
const token = {token};
document.getElementById("f").addEventListener("submit", async (event) => {{
  event.preventDefault();
  const msg = document.getElementById("msg");
  const body = {{password: document.getElementById("password").value}};
  const name = document.getElementById("name").value.trim();
  if (name) body.name = name;
  const res = await fetch(`/api/v1/invitations/${{encodeURIComponent(token)}}/accept`, {{
    method: "POST", headers: {{"Content-Type": "application/json"}}, body: JSON.stringify(body)}});
  const data = await res.json().catch(() => ({{}}));
  msg.textContent = res.ok
    ? `Welcome, ${{data.user.email}}. Sign in from the Tasktimer extension with this e-mail.`
    : (data.detail || "Something went wrong.");
}});
</script></body></html>"""


async def invite_page(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    safe = html.escape(repr(token).replace("<", "\\u003c"), quote=False)
    return web.Response(
        text=_INVITE.format(token=safe),
        content_type="text/html",
        headers={"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"},
    )


def install(app: web.Application) -> list[web.AbstractRoute]:
    return [app.router.add_get("/invite/{token}", invite_page, allow_head=False)]
