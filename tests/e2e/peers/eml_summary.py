"""Parses a stored .eml with Python's own MIME parser (email.policy.default) and prints it as
JSON for the tests: headers, the tree of content types, and every leaf part decoded (text
parts as text, others as base64)."""

import base64
import json
import sys
from email import policy
from email.parser import BytesParser


def tree(part):
    if part.is_multipart():
        return {"type": part.get_content_type(), "parts": [tree(p) for p in part.iter_parts()]}
    return {"type": part.get_content_type()}


def leaves(msg):
    out = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        leaf = {
            "type": part.get_content_type(),
            "content_id": part.get("Content-ID"),
            "disposition": part.get_content_disposition(),
        }
        if part.get_content_maintype() == "text":
            leaf["text"] = part.get_content()
        else:
            leaf["base64"] = base64.b64encode(part.get_content()).decode()
        out.append(leaf)
    return out


def main():
    with open(sys.argv[1], "rb") as f:
        msg = BytesParser(policy=policy.default).parse(f)
    print(json.dumps({
        "subject": str(msg["Subject"]),
        "from": str(msg["From"]),
        "to": str(msg["To"]),
        "date": str(msg["Date"]),
        "message_id": str(msg["Message-ID"]),
        "tree": tree(msg),
        "leaves": leaves(msg),
    }))


if __name__ == "__main__":
    main()
