from __future__ import annotations

from ed_pipeline.defs.privacy_audit import is_model_environment_file


def test_only_mlflow_model_environment_files_are_left_out_of_the_artifact_scan(tmp_path) -> None:
    model = tmp_path / "models" / "m-1" / "artifacts"
    model.mkdir(parents=True)
    for name in ("MLmodel", "uv.lock", "pyproject.toml", "requirements.txt", "input_example.json"):
        (model / name).write_text("x")
    loose = tmp_path / "run" / "artifacts"
    loose.mkdir(parents=True)
    (loose / "requirements.txt").write_text("x")
    assert is_model_environment_file(model / "uv.lock") and is_model_environment_file(model / "pyproject.toml")
    assert not is_model_environment_file(model / "input_example.json")  # data: scanned
    assert not is_model_environment_file(model / "MLmodel")  # the signature: scanned
    assert not is_model_environment_file(loose / "requirements.txt")  # not beside a logged model: scanned
