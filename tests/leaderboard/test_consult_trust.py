"""A results folder is data, not code: the Consult page on a hostile folder of the kind colleagues share.

One real tiny run (its adapter file kept outside the folder) is copied into hostile variants, as
someone editing the JSON would: a remote expert whose ``base_url`` is a listener this test starts
and whose ``api_key_env`` names a variable holding a secret; a classifier router whose file is a
pickle that would create a marker file when unpickled; an adapter shipped inside the folder with
its matching sha256; a recorded ``trust_remote_code: true``; and a copy of the user's own remote
adapter whose recorded ``base_url`` was pointed at the listener. The page is driven with ``AppTest``
(in this process, so the listeners see whatever it sends).
"""

from __future__ import annotations

import copy
import hashlib
import json
import pickle
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import consult_ui
import pytest
import yaml
from streamlit.testing.v1 import AppTest

from medmoe_lm_eval import settings
from medmoe_lm_eval.harness import consult_trust
from medmoe_lm_eval.paths import leaderboard_dir

APP = str(leaderboard_dir() / "app.py")
SECRET_ENV = "MEDMOE_TEST_CONSULT_SECRET"
SECRET = "s3cret-key-that-must-stay-home"


class Listener:
    """An HTTP server on 127.0.0.1 that records every request (line, headers, body) and answers 400."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                listener.seen.append(f"{self.requestline}\n{self.headers}\n{body}")
                self.send_response(400)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no")

            do_GET = do_POST = _record

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile_listener() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.close()


@pytest.fixture
def own_listener() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.close()


class Bomb:
    """Unpickling this creates ``path``: the proof that a router file was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "unpickled"))


@dataclass(frozen=True)
class Folder:
    root: Path
    adapters: Path  # the user's own adapter files, outside the results folder
    marker: Path
    real_run: dict


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_run(root: Path, folder: str, run: dict, candidate: str, adapter: dict) -> None:
    data = copy.deepcopy(run)
    data["config"]["medmoe"].update(candidate=candidate, adapter=adapter)
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / "results_2026-04-01T00-00-00.000000.json").write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture(scope="module")
def real(tmp_path_factory, tiny_model_dir) -> Folder:
    """One real run of a tiny single-expert candidate whose adapter file stays on this machine."""
    from medmoe_lm_eval.demo.runs import evaluate_candidate

    work = tmp_path_factory.mktemp("trust")
    adapters = work / "my-adapters"
    adapters.mkdir()
    own = adapters / "tiny-own.yaml"
    own.write_text(yaml.safe_dump({"name": "tiny-own", "kind": "single", "experts": [{"name": "m", "model": str(tiny_model_dir), "device": "cpu"}]}))
    root = work / "shared-results"
    path, _ = evaluate_candidate(own, ["medmoe_ppl_code"], root, "tiny-own", limit=2, device="cpu")
    return Folder(root, adapters, work / "unpickled-marker", json.loads(path.read_text(encoding="utf-8")))


def _remote_adapter(name: str, url: str) -> dict:
    expert = {"name": "gen", "domain": "general", "backend": "remote", "model": "served", "base_url": url, "api_key_env": SECRET_ENV, "max_retries": 0}
    return {"name": name, "kind": "single", "experts": [expert]}


def _page(monkeypatch, root: Path, trust: str = "") -> AppTest:
    monkeypatch.setenv("MEDMOE_RESULTS", str(root))
    monkeypatch.setenv(SECRET_ENV, SECRET)
    monkeypatch.setenv(settings.CONSULT_TRUST.name, trust)
    monkeypatch.delenv("MEDMOE_USE_CASES", raising=False)
    consult_ui.live_consultant.clear()
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/consult.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _blocked(at: AppTest) -> dict[str, str]:
    table = next(d.value for d in at.dataframe if "why not" in d.value.columns)
    return dict(zip(table["candidate"], table["why not"]))


def _ask(at: AppTest, candidate: str) -> AppTest:
    at.selectbox(key="consult_candidate").set_value(candidate).run()
    at.text_area(key="consult_question").input("Which organ pumps blood?")
    next(b for b in at.button if b.label == "Ask").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_hostile_remote_expert_never_receives_the_key(monkeypatch, real, tmp_path, hostile_listener):
    root = tmp_path / "results"
    _write_run(
        root,
        "hostile-remote",
        real.real_run,
        "hostile-remote",
        {**_remote_adapter("hostile-remote", hostile_listener.url), "source": "/colleague/hostile.yaml", "sha256": "ab" * 32},
    )
    at = _page(monkeypatch, root)
    reason = _blocked(at)["hostile-remote"]
    assert reason.startswith("no adapter file on this machine matches the one its run recorded (sha256 abababababab…")
    assert f"opt in with {settings.CONSULT_TRUST.name}=hostile-remote" in reason
    assert hostile_listener.seen == []

    at = _page(monkeypatch, root, trust="hostile-remote")  # opted in: runs as recorded, but with no key
    assert any("without API keys" in w.value for w in at.warning)
    _ask(at, "hostile-remote")
    assert any("HTTP 400" in e.value for e in at.error)  # it did reach the listener ...
    assert hostile_listener.seen and not any(SECRET in r or "Authorization" in r for r in hostile_listener.seen)  # ... without the key


def test_a_recorded_router_pickle_is_never_loaded(monkeypatch, real, tmp_path, tiny_model_dir):
    router = tmp_path / "router.joblib"
    router.write_bytes(pickle.dumps(Bomb(real.marker)))
    experts = [{"name": d, "domain": d, "model": str(tiny_model_dir), "device": "cpu"} for d in ("biomedical", "legal")]
    adapter = {"name": "hostile-router", "kind": "moe", "experts": experts, "router": {"type": "classifier", "path": str(router)}}
    root = tmp_path / "results"
    _write_run(root, "hostile-router", real.real_run, "hostile-router", {**adapter, "source": "/colleague/router.yaml", "sha256": "cd" * 32})
    at = _page(monkeypatch, root)
    assert _blocked(at)["hostile-router"].startswith("no adapter file on this machine matches")
    assert not [b for b in at.selectbox if b.key == "consult_candidate"]  # nothing to pick: the page stops there
    assert not real.marker.exists()
    pickle.loads(router.read_bytes())  # the bomb is live: loading it is what the page avoided
    assert real.marker.exists()
    real.marker.unlink()


def test_an_adapter_shipped_inside_the_folder_is_not_the_users(monkeypatch, real, tmp_path, hostile_listener):
    root = tmp_path / "results"
    shipped = root / "adapters" / "shipped.yaml"
    shipped.parent.mkdir(parents=True)
    shipped.write_text(yaml.safe_dump(_remote_adapter("shipped", hostile_listener.url)))
    recorded = {**_remote_adapter("shipped", hostile_listener.url), "source": str(shipped), "sha256": _sha(shipped)}
    _write_run(root, "shipped", real.real_run, "shipped", recorded)
    reason = _blocked(_page(monkeypatch, root))["shipped"]
    assert reason.startswith(f"its adapter file {shipped} lies inside the results folder")
    assert hostile_listener.seen == []


def test_the_users_own_adapter_runs_not_the_recorded_one(monkeypatch, real, tmp_path, hostile_listener, own_listener):
    """Recorded ``trust_remote_code: true`` and a recorded ``base_url`` swapped for the listener's,
    with the sha256 of the user's files kept: what runs is what the user's files say."""
    from medmoe_lm_eval.harness.config import dump_adapter, load_adapter

    served = real.adapters / "served.yaml"
    served.write_text(yaml.safe_dump(_remote_adapter("served", own_listener.url)))
    swapped = dump_adapter(load_adapter(served))
    swapped["experts"][0]["base_url"] = hostile_listener.url
    tampered = copy.deepcopy(real.real_run["config"]["medmoe"]["adapter"])
    tampered["experts"][0]["trust_remote_code"] = True
    root = tmp_path / "results"
    _write_run(root, "served", real.real_run, "served", swapped)
    _write_run(root, "tiny-own", real.real_run, "tiny-own", tampered)

    at = _page(monkeypatch, root)
    assert set(at.selectbox(key="consult_candidate").options) == {"served", "tiny-own"}
    assert any(c.value.startswith("Runs your adapter file") for c in at.caption)
    from medmoe_lm_eval.store.results import load_results

    ready = {c.name: c for c in consult_ui.consult_candidates(load_results(root), ["served", "tiny-own"])}
    assert ready["tiny-own"].adapter["experts"][0].get("trust_remote_code") is False
    assert ready["served"].adapter["experts"][0]["base_url"] == own_listener.url

    _ask(at, "served")
    assert hostile_listener.seen == []
    assert own_listener.seen and all(f"Authorization: Bearer {SECRET}" in r for r in own_listener.seen)


def test_trust_rules_on_their_own(real, tmp_path):
    own = real.adapters / "tiny-own.yaml"
    recorded = real.real_run["config"]["medmoe"]["adapter"]
    assert consult_trust.local_adapter_file(recorded, "tiny-own", real.root) == (own, "")
    moved = {**recorded, "source": str(tmp_path / "gone" / "tiny-own.yaml")}
    assert consult_trust.local_adapter_file(moved, "tiny-own", real.root)[0] is None
    edited = {**recorded, "sha256": "0" * 64}
    assert "differs from the one its run recorded" in consult_trust.local_adapter_file(edited, "tiny-own", real.root)[1]
    assert "record no adapter sha256" in consult_trust.local_adapter_file({**recorded, "sha256": None}, "tiny-own", real.root)[1]
    bundled = yaml.safe_load((leaderboard_dir().parent / "model_adapters" / "medmoe-seed.yaml").read_text())
    path, _ = consult_trust.local_adapter_file(
        {"source": "/elsewhere/medmoe-seed.yaml", "sha256": _sha(leaderboard_dir().parent / "model_adapters" / "medmoe-seed.yaml")}, "x", real.root
    )
    assert path is not None and path.name == "medmoe-seed.yaml" and bundled["name"] == "medmoe-seed"  # found by its bundled name
    remote = {"experts": [{"name": "a", "backend": "remote", "api_key_env": "K", "trust_remote_code": True}]}
    assert consult_trust.defanged(remote)["experts"][0] == {"name": "a", "backend": "remote", "trust_remote_code": False}
