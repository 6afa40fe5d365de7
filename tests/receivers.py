"""Local receivers for notification tests: a minimal SMTP server and a webhook (HTTP POST) receiver, each in a thread
on 127.0.0.1 with a free port, keeping what they received. Used as context managers, so they stop on every path."""
from __future__ import annotations

import email
import email.policy
import html
import json
import re
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough of RFC 5321 for smtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT (no TLS, no AUTH)."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 127.0.0.1 test ESMTP")
        sender, rcpts, data, in_data = None, [], [], False
        for raw in self.rfile:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if in_data:
                if line == ".":
                    self.server.messages.append({"from": sender, "to": rcpts, "raw": "\r\n".join(data)})
                    sender, rcpts, data, in_data = None, [], [], False
                    self.reply("250 OK: queued")
                else:
                    data.append(line[1:] if line.startswith("..") else line)
                continue
            verb = line[:4].upper()
            if verb == "EHLO":
                self.reply("250-127.0.0.1")
                self.reply("250 8BITMIME")
            elif verb == "HELO":
                self.reply("250 127.0.0.1")
            elif verb == "MAIL":
                sender = line.partition(":")[2].strip()
                self.reply("250 OK")
            elif verb == "RCPT":
                rcpts.append(line.partition(":")[2].strip())
                self.reply("250 OK")
            elif verb == "DATA":
                in_data = True
                self.reply("354 end with <CRLF>.<CRLF>")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:  # RSET, NOOP, ...
                self.reply("250 OK")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Running:
    """Serves ``self.server`` in a daemon thread between ``__enter__`` and ``__exit__``."""

    server: socketserver.BaseServer

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpReceiver(_Running):
    """``with SmtpReceiver() as smtp:`` -> ``smtp.port``; ``smtp.mails()`` gives the received mails parsed:
    ``[{"from", "to", "subject", "body"}]`` (body: the decoded text of every text part, HTML tags removed and
    entities decoded: what a reader sees)."""

    def __init__(self) -> None:
        self.server = _Server(("127.0.0.1", 0), _SmtpHandler)
        self.server.messages = []
        self.port = self.server.server_address[1]

    def mails(self) -> list[dict]:
        out = []
        for m in list(self.server.messages):
            msg = email.message_from_string(m["raw"], policy=email.policy.default)
            body = "\n".join(part.get_content() for part in msg.walk() if part.get_content_maintype() == "text")
            body = html.unescape(re.sub(r"<[^>]+>", "", body))
            out.append({"from": m["from"], "to": m["to"], "subject": str(msg["subject"]), "body": body})
        return out


class WebhookReceiver(_Running):
    """``with WebhookReceiver() as hook:`` -> ``hook.url(path)``; ``hook.posts`` is ``[(path, JSON body)]``."""

    def __init__(self) -> None:
        posts: list[tuple[str, dict]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                posts.append((self.path, json.loads(body or b"null")))
                self.send_response(200)
                self.send_header("Content-Length", "1")
                self.end_headers()
                self.wfile.write(b"1")  # what Slack answers

            def log_message(self, *args) -> None:
                pass

        self.posts = posts
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"
