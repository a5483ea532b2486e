"""Contacts end to end: the admin API and `kabarin contacts import` against the real server."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from .conftest import FIXTURES, KABARIN, KabarinProcess


def test_contacts_api_registers_over_the_push_and_forgets(
    make_server: Callable[..., KabarinProcess],
) -> None:
    server = make_server()
    body = json.loads((FIXTURES / "complete_instant_shipped_packages.json").read_text())
    server.ingest(body)
    order = "BDI-1737442836890"
    pushed = server.admin("GET", f"/contacts/{order}")
    assert pushed.status_code == 200, pushed.text
    assert pushed.json() == {  # as the sinks see it: the push's 081229917190 in E.164
        "order_id": order,
        "shop": "default",
        "name": "Okka",
        "phone": "+6281229917190",
        "email": None,
        "language": None,
    }

    r = server.admin(
        "PUT", f"/contacts/{order}", json={"phone": "+62 812-3456-7890", "email": "okka@toko.id"}
    )
    assert r.status_code == 200, r.text
    want = {
        "order_id": order,
        "shop": "default",
        "name": "Okka",  # left out: what the push said stays
        "phone": "+6281234567890",
        "email": "okka@toko.id",
        "language": None,
    }
    assert r.json() == want
    server.ingest(body)  # the same push again: the registered phone stays
    assert server.admin("GET", f"/contacts/{order}").json() == want

    bad = server.admin("PUT", f"/contacts/{order}", json={"phone": "0812"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "bad_request"
    assert "phone: the phone number" in bad.json()["detail"]
    assert "0812" not in bad.json()["detail"]
    for body_ in ({"language": "fr"}, {"email": "nope"}, {}, {"phone_number": "0812"}):
        assert server.admin("PUT", f"/contacts/{order}", json=body_).status_code == 400, body_
    nul = server.admin("PUT", "/contacts/C1", json={"name": "a\u0000b"})
    assert nul.status_code == 400, nul.text
    assert nul.json()["detail"].startswith("name: "), nul.text
    assert "U+0000" in nul.json()["detail"]
    assert server.admin("GET", "/contacts/C1").status_code == 404  # nothing stored
    assert server.client.get(f"/admin/v1/contacts/{order}").status_code == 401

    assert server.admin("DELETE", f"/contacts/{order}").status_code == 204
    assert server.admin("GET", f"/contacts/{order}").status_code == 404
    assert server.admin("DELETE", f"/contacts/{order}").status_code == 404


def test_csv_import_reports_counts_and_row_errors(
    make_server: Callable[..., KabarinProcess], tmp_path: Path
) -> None:
    server = make_server()
    csv = tmp_path / "pelanggan.csv"
    csv.write_text(
        "\ufefforder_id,name,phone,email,language\n"
        "OID-1,Siti,0812-3456-7890,siti@toko.id,id\n"
        "OID-2,Budi,,budi@toko.id,en\n"
        "OID-3,Andi,08123,,\n"
        ",Tanpa Order,081234567890,,\n"
        "OID-4,Rina,081234567891,rina,\n"
        "\n"
        "OID-5,Dewi,+62 812 3456 7892,,\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [str(KABARIN), "contacts", "import", "--config", str(server.config_path), str(csv)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done
    assert f"{csv}: imported 3 contacts" in done.stdout
    assert "3 rows not imported:" in done.stderr
    assert "line 4: phone: the phone number" in done.stderr
    assert "line 5: order_id is empty" in done.stderr
    assert "line 6: email: not an email address" in done.stderr
    assert "08123" not in done.stderr and "081234567890" not in done.stderr
    assert server.admin("GET", "/contacts/OID-1").json() == {
        "order_id": "OID-1",
        "shop": "default",
        "name": "Siti",
        "phone": "+6281234567890",
        "email": "siti@toko.id",
        "language": "id",
    }
    assert server.admin("GET", "/contacts/OID-5").json()["phone"] == "+6281234567892"
    assert server.admin("GET", "/contacts/OID-3").status_code == 404

    header = tmp_path / "wrong.csv"
    header.write_text("order,hp\nOID-9,0812\n")
    done = subprocess.run(
        [str(KABARIN), "contacts", "import", "--config", str(server.config_path), str(header)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "imported 0 contacts" in done.stdout
    assert "line 1: the header must name order_id" in done.stderr
