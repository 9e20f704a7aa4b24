import pytest
from click.testing import CliRunner
from conftest import run_cli

from wflwv.cli import cli

COMMANDS = sorted(cli.commands)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "--help" in result.output




def test_bad_checkpoint_is_one_line_naming_the_file(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    checkpoint = tmp_path / "model.pth.tar"
    checkpoint.write_text("not a checkpoint")
    result = run_cli("bench", "--videos", str(videos), "--model", str(checkpoint), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(checkpoint) in lines[0]


def test_unknown_model_config_is_one_line(tmp_path):
    result = run_cli("train", "--data", str(tmp_path), "--config", "no_such_model", "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "no such model config" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_malformed_comma_separated_option_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["bench", "--videos", str(tmp_path), "--model", __file__, "--out", str(tmp_path / "out"), "--rwr-iters", "1,two"])
    assert result.exit_code == 2
    assert "'--rwr-iters': 'two' is not a valid integer" in result.output
