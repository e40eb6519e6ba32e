"""The `ed-pipeline` command on ordinary mistakes: a clear one-line error and exit 2, never a traceback."""

from __future__ import annotations

import pytest

from ed_pipeline.cli import main


@pytest.mark.parametrize(("argv", "said"), [
    (["--people", "300"], "people must be at least 500"),
    (["--first-month", "2017-08", "--last-month", "2017-01"], "empty month range 2017-08..2017-01"),
    (["--first-month", "2017-13"], "2017-13: months must be YYYY-MM"),
    # files named for these months are never ingested: refresh would leave them out
    (["--first-month", "2012-06", "--last-month", "2013-02"], "2012-06: months must be YYYY-MM from 2013-01"),
    (["--first-month", "2098-06", "--last-month", "2099-01"], "2098-06, 2099-01: months must be"),
])
def test_synth_refuses_what_it_cannot_make_clearly(argv, said, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path / "data"))
    assert main(["synth", *argv]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and said in err
    assert not (tmp_path / "data" / "landing").exists()
