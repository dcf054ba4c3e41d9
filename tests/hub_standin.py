"""A local stand-in of the Hugging Face hub's HTTP API for tests: the model search (GET
/api/models?search=&filter=gguf&sort=&limit=), the tree listing, resolve with HEAD (the sha256
and size as the hub publishes them) and ranged GETs, gated repos, a connection that drops part of
the way, a lying sha256. It counts the bytes of files it served."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading


class StandIn(http.server.BaseHTTPRequestHandler):
    repos: dict[str, dict[str, bytes]] = {}
    gated: set[str] = set()
    served = 0
    cut: dict[str, int] = {}  # file -> bytes sent before the connection drops (once)
    lie: set[str] = set()  # files whose published sha256 is wrong (a corrupted download)
    mirror: dict[str, bytes] = {}  # file -> other bytes served, with no X-Linked-Etag (a mirror's swap)
    unhashed: set[str] = set()  # files published with no sha256 at all (neither listing nor HEAD)
    page: int = 0  # the listing's page size (0: one page), paged with Link: rel="next" as the hub does
    searched: list[dict] = []  # the queries the search got (their parameters)

    def _route(self) -> tuple[str, str | None, bytes | None] | None:
        path = self.path.split("?")[0]
        for repo, files in self.repos.items():
            mine = path.startswith((f"/api/models/{repo}/", f"/{repo}/"))
            if mine and repo in self.gated and self.headers.get("Authorization") != "Bearer hf_good":
                self.send_response(401)
                self.end_headers()
                return None
            if path == f"/api/models/{repo}/tree/main":
                return repo, None, None
            prefix = f"/{repo}/resolve/main/"
            if path.startswith(prefix) and path[len(prefix):] in files:
                return repo, path[len(prefix):], files[path[len(prefix):]]
        self.send_response(404)
        self.end_headers()
        return None

    def do_HEAD(self):  # noqa: N802
        hit = self._route()
        if hit is None:
            return
        data = self.mirror.get(hit[1], hit[2] or b"")
        self.send_response(302)
        self.send_header("Location", self.path)
        sha = "0" * 64 if hit[1] in self.lie else hashlib.sha256(data).hexdigest()
        if hit[1] not in self.mirror and hit[1] not in self.unhashed:
            self.send_header("X-Linked-Etag", f'"{sha}"')
        self.send_header("X-Linked-Size", str(len(data)))
        self.end_headers()

    def _search(self) -> None:
        """The hub's search: every repo whose id holds each word of `search`, by the sort key."""
        from urllib.parse import parse_qs, urlsplit

        q = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        type(self).searched.append(q)
        words = q.get("search", "").lower().split()
        hits = [{"id": repo, "downloads": 1000 - i, "likes": i, "tags": ["gguf"]}
                for i, repo in enumerate(self.repos) if all(w in repo.lower() for w in words)]
        if q.get("sort") == "likes":
            hits.sort(key=lambda h: -h["likes"])
        body = json.dumps(hits[:int(q.get("limit") or 100)]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        if self.path.split("?")[0] == "/api/models":
            self._search()
            return
        hit = self._route()
        if hit is None:
            return
        repo, name, data = hit
        if name is None:
            self._listing(repo)
            return
        data = self.mirror.get(name, data)
        start, end = 0, len(data) - 1
        if self.headers.get("Range", "").startswith("bytes="):
            a, _, b = self.headers["Range"][6:].partition("-")
            start, end = int(a), min(end, int(b)) if b else end
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if name in self.cut:  # a dropped connection, part of the way in
            self.wfile.write(data[start:start + self.cut.pop(name)])
            self.wfile.flush()
            self.close_connection = True
            return
        # Counted before the write: the client may have read every byte and gone on before this
        # thread runs again, so a count after the write races the test that reads it.
        type(self).served += end - start + 1
        self.wfile.write(data[start:end + 1])

    def _listing(self, repo: str) -> None:
        items = [{"type": "file", "path": p, "size": len(d),
                  **({} if p in self.unhashed else {"lfs": {"oid": "0" * 64 if p in self.lie else
                                                            hashlib.sha256(d).hexdigest(), "size": len(d)}})}
                 for p, d in self.repos[repo].items()] + [{"type": "directory", "path": "x"}]
        start = int(self.path.partition("cursor=")[2] or 0)
        end = start + self.page if self.page else len(items)
        body = json.dumps(items[start:end]).encode()
        self.send_response(200)
        if end < len(items):
            base = f"http://{self.headers['Host']}{self.path.split('?')[0]}"
            self.send_header("Link", f'<{base}?recursive=1&cursor={end}>; rel="next"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(monkeypatch, repos: dict[str, dict[str, bytes]]):
    """Run the stand-in with these repos; returns (the handler class, the server)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    StandIn.repos, StandIn.gated, StandIn.served, StandIn.cut, StandIn.lie = repos, set(), 0, {}, set()
    StandIn.mirror, StandIn.unhashed, StandIn.page, StandIn.searched = {}, set(), 0, []
    return StandIn, server
