"""The seed's Python client (scripts/license.py) talks to Tessera unchanged: the same httpx calls
with the same JSON bodies, and PyJWT verifying the RS256 token with the server's public key.
Usage: seed_client_check.py BASE_URL ADMIN_TOKEN PUBLIC_KEY_PEM"""
import pathlib
import sys

import httpx
import jwt as pyjwt

S, TOKEN, PUBLIC = sys.argv[1], sys.argv[2], sys.argv[3]
H = {"Authorization": f"Bearer {TOKEN}"}
key = httpx.post(f"{S}/admin/keys", json={"product": "peregrine", "tier": "paid", "seats": 2}, headers=H).json()["key_display"]
r = httpx.post(f"{S}/v1/activate", json={"key": key, "machine_id": "m1", "product": "peregrine", "app_version": None, "platform": "linux"}, timeout=10)
r.raise_for_status(); data = r.json()
pub = pathlib.Path(PUBLIC).read_bytes()
payload = pyjwt.decode(data["jwt"], pub, algorithms=["RS256"])
assert payload["product"] == "peregrine" and payload["tier"] == "paid" and payload["machine"] == "m1", payload
r = httpx.post(f"{S}/v1/refresh", json={"jwt": data["jwt"], "machine_id": "m1"}, timeout=10); r.raise_for_status()
r = httpx.post(f"{S}/v1/usage", json={"event_type": "cover_letter_generated", "product": "peregrine", "metadata": {}}, headers={"Authorization": f"Bearer {data['jwt']}"}, timeout=5); r.raise_for_status()
r = httpx.post(f"{S}/v1/flag", json={"flag_type": "content_violation", "product": "peregrine", "details": {}}, headers={"Authorization": f"Bearer {data['jwt']}"}, timeout=5); r.raise_for_status()
r = httpx.post(f"{S}/v1/deactivate", json={"jwt": data["jwt"], "machine_id": "m1"}, timeout=10); r.raise_for_status()
print("seed client calls OK:", sorted(payload), r.json())
