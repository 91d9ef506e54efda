"""`plinth datasets` (in this process, through tests/support/cli.py) against the live
server's data directory."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_cli import fails, ok
from tests.support.live_server import LiveServer

FAQ = Path(__file__).resolve().parents[2] / "examples" / "acme-health" / "faq.jsonl"


def test_datasets_add_show_diff(live_server: LiveServer, tmp_path: Path) -> None:
    home = live_server.home
    out = ok(home, "datasets", "add", str(FAQ), "--name", "cli-faq")
    assert "added cli-faq@1: 303 rows (chat), 273 train / 30 validation" in out and "tokens" in out
    assert "unchanged" in ok(home, "datasets", "add", str(FAQ), "--name", "cli-faq")
    fewer = tmp_path / "faq.jsonl"
    fewer.write_text("".join(FAQ.read_text().splitlines(keepends=True)[:-5]))
    assert "added cli-faq@2: 298 rows" in ok(home, "datasets", "add", str(fewer), "--name", "cli-faq", "--note", "5 fewer")
    diff = json.loads(ok(home, "datasets", "diff", "cli-faq@1", "2", "--json"))
    assert (diff["removed"], diff["added"], diff["unchanged"]) == (5, 0, 298)
    show = json.loads(ok(home, "datasets", "show", "cli-faq", "--json"))
    assert show["ref"] == "cli-faq@2" and show["note"] == "5 fewer" and show["stats"]["tokens"]["total"] > 0
    assert "cli-faq@2" in ok(home, "datasets", "list") and "cli-faq@1" in ok(home, "datasets", "versions", "cli-faq")
    row = json.loads(ok(home, "datasets", "rows", "cli-faq@1", "--split", "validation", "--limit", "1"))
    assert set(row) == {"messages"}
    tagged = json.loads(ok(home, "datasets", "rows", "cli-faq@1", "--limit", "1"))
    assert tagged["split"] in ("train", "validation")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "q"}]}\n')
    assert "line 1: the last message must be the assistant's" in fails(home, "datasets", "add", str(bad), "--name", "bad")
    assert "removed cli-faq (2 versions)" in ok(home, "datasets", "rm", "cli-faq", "--yes")
