"""A reload of a configuration file that cannot be read: refused like any invalid file, the
configuration in use kept."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import TestClient

from gateway import metrics
from gateway.app import create_app
from gateway.check import validate_file

ADMIN = {"Authorization": "Bearer adm1n-adm1n-adm1n"}


def test_a_file_that_is_no_longer_utf8_is_refused_and_the_running_one_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"receiver: {{token: t0ken}}\nstore: {{url: 'sqlite:///{tmp_path}/k.db'}}\n"
        "admin: {token: adm1n-adm1n-adm1n}\ndispatcher: {enabled: false}\n"
    )
    app = create_app(validate_file(str(path)), config_path=path)
    with TestClient(app, raise_server_exceptions=False) as client:
        path.write_bytes(b"\xff\xfe")
        r = client.post("/admin/v1/reload", headers=ADMIN)
        assert r.status_code == 400, r.text
        assert r.json()["problems"] == [f"{path}: cannot read: not UTF-8 text"]
        assert metrics.REGISTRY.get_sample_value("kabarin_config_last_reload_successful") == 0
        # still serving with the configuration it had
        assert client.get("/admin/v1/deliveries", headers=ADMIN).status_code == 200
        # the console's configuration page shows the problem
        r = client.post("/ui/login", data={"token": "adm1n-adm1n-adm1n"}, follow_redirects=False)
        assert r.status_code == 303, r.text
        page = client.get("/ui/config")
        assert page.status_code == 200, page.text
        assert "cannot read: not UTF-8 text" in page.text
