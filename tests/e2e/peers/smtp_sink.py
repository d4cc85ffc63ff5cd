"""A real SMTP server for the notifier tests (aiosmtpd): stores each message it accepts in
--dir as N.eml (the message as received) with N.json (envelope sender and recipients).

  --reply "451 4.3.0 try later"   answer DATA with this reply instead of accepting
  --auth user:password            require AUTH (PLAIN/LOGIN; without --tls allowed in plain text)
  --tls starttls|implicit --cert PEM --key PEM
                                  STARTTLS required before MAIL and AUTH, or TLS from the first
                                  byte (SMTPS); N.json then says whether the message came over
                                  TLS and who authenticated

Runs until SIGTERM or SIGINT.
"""

import argparse
import json
import os
import signal
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Store:
    def __init__(self, directory, reply):
        self.directory = directory
        self.reply = reply
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        if self.reply:
            return self.reply
        with self.lock:
            self.count += 1
            n = self.count
        base = os.path.join(self.directory, f"{n:04d}")
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        tls = server.transport.get_extra_info("ssl_object") is not None
        with open(base + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                       "tls": tls, "authenticated_as": session.auth_data if session.authenticated else None}, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 Message accepted for delivery"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--reply", default=None)
    p.add_argument("--auth", default=None)
    p.add_argument("--tls", choices=["starttls", "implicit"], default=None)
    p.add_argument("--cert", default=None)
    p.add_argument("--key", default=None)
    args = p.parse_args()

    kwargs = {}
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        if args.tls == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        else:
            kwargs.update(ssl_context=context)
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            # handled=False: aiosmtpd then answers 535 itself.
            return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

        # aiosmtpd counts only STARTTLS as TLS; with implicit TLS every byte is encrypted anyway.
        kwargs.update(authenticator=authenticator, auth_required=True,
                      auth_require_tls=args.tls == "starttls")

    controller = Controller(Store(args.dir, args.reply), hostname="127.0.0.1", port=args.port, **kwargs)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
