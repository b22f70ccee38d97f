"""The command line itself: start-up without the heavy libraries, unknown flags refused, Ctrl-C and a closed pipe
handled in one line, and the bootstrap model checked before any pipeline starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rcforge import cli
from rcforge.cli.main import COMMANDS

from conftest import SAMPLE_RECIPE

HEAVY = ("apache_beam", "torch", "transformers", "duckdb")

PROBE = """
import sys
from rcforge import cli
try:
    code = cli.main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("HEAVY", ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["tasks"], ["sources"], [], ["build", "--help"],
                                  ["ingest", "--help"], ["bootstrap", "--help"], ["refilter", "--help"],
                                  ["validate", "--help"], ["stats", "--help"], ["export", "--help"]])
def test_start_up_imports_no_pipeline_or_model_library(argv):
    run = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv], capture_output=True, text=True,
                         timeout=120)
    line = [x for x in run.stderr.splitlines() if x.startswith("HEAVY")]
    assert line == ["HEAVY "], (argv, run.stderr[-2000:])


def test_every_command_has_its_flags_in_help(capsys):
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit:
            cli.main([name, "--help"])
        assert exit.value.code == 0
        text = capsys.readouterr().out
        assert f"rcforge {name}" in text and "--" in text, name


@pytest.mark.parametrize("argv", [["stats", "OUT", "--jsn", "x.json"], ["validate", "OUT", "--imgaes"],
                                  ["tasks", "--verbos"], ["refilter", "OUT", "--lambda", "0.5", "--uniq"],
                                  ["export", "llava", "OUT", "x.json", "--extra"]])
def test_a_mistyped_flag_of_a_plain_command_is_an_error(argv, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit:
        cli.main(argv)
    assert exit.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("command", ["build", "ingest", "bootstrap"])
def test_a_flag_neither_rcforge_nor_beam_knows_is_refused_before_anything_runs(command, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main([command, str(SAMPLE_RECIPE), "--out", str(out), "--no-progress", "--runnr", "FnApiRunner"])
    err = capsys.readouterr().err
    assert code == 1 and "unknown argument '--runnr'" in err and "did you mean --runner?" in err
    assert not out.exists()


def test_beam_options_still_reach_beam(tmp_path):
    out = tmp_path / "out"
    assert cli.main(["ingest", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress", "--runner", "FnApiRunner",
                     "--job_name=rcforge-test"]) == 0


def test_a_bad_value_for_a_beam_option_is_one_error(tmp_path, capsys):
    code = cli.main(["ingest", str(SAMPLE_RECIPE), "--out", str(tmp_path / "o"), "--direct_num_workers", "many"])
    assert code == 1 and "Beam pipeline option" in capsys.readouterr().err


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    from rcforge.inspect import stats

    def interrupted(args, rest):
        raise KeyboardInterrupt

    monkeypatch.setattr(stats, "main", interrupted)
    assert cli.main(["stats", "OUT"]) == 130
    err = capsys.readouterr().err
    assert err == "rcforge stats: interrupted\n"


def test_a_closed_pipe_is_quiet():
    run = subprocess.run(f"{sys.executable} -m rcforge.cli tasks | head -c 10", shell=True, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and len(run.stdout) == 10 and run.stderr == ""


def test_sigint_to_a_running_build_exits_130_in_one_line(tmp_path):
    import signal
    import time

    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "rcforge.cli", "build", str(SAMPLE_RECIPE), "--out", str(out),
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / ".staging").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # until the build has begun writing its generation
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the build finished before the signal")
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["rcforge build: interrupted"], err
    assert cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"]) == 0  # the next writer goes on


def test_bootstrap_model_is_relative_to_the_recipe_and_checked_first(tmp_path, capsys):
    from rcforge.bootstrap.options import model_location

    (tmp_path / "models" / "m").mkdir(parents=True)
    assert model_location("models/m", str(tmp_path)) == str(tmp_path / "models" / "m")
    assert model_location("microsoft/Florence-2-large", str(tmp_path)) == "microsoft/Florence-2-large"
    assert model_location("./nothing", str(tmp_path)) == str(tmp_path / "nothing")

    recipe = tmp_path / "r.yaml"
    text = SAMPLE_RECIPE.read_text().replace("../sample_data/", str(SAMPLE_RECIPE.parents[1] / "sample_data") + "/")
    for model, message in [("./models/none", "no model folder at"), ("models/m", "holds no config.json"),
                           ("nobody/no-such-model", "not in the local hub cache")]:
        recipe.write_text(text + f"\nbootstrap:\n  model: {model}\n  sources: [visual_genome]\n")
        out = tmp_path / "out"
        code = cli.main(["bootstrap", str(recipe), "--out", str(out), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()  # refused before the ingest


def test_cuda_without_a_gpu_is_refused_first(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    out = tmp_path / "out"
    code = cli.main(["bootstrap", str(SAMPLE_RECIPE), "--out", str(out), "--model", str(model), "--device", "cuda",
                     "--sources", "visual_genome"])
    assert code == 1 and "torch sees no CUDA GPU" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("argv", [["stats", "{out}"], ["report", "{out}", "--html", "{tmp}/r.html"],
                                  ["preview", "{out}", "--html", "{tmp}/p.html"],
                                  ["export", "llava", "{out}", "{tmp}/x.json"], ["validate", "{out}"]])
def test_a_truncated_shard_is_one_line_for_every_reader(argv, sample_build, tmp_path, capsys):
    from conftest import copy_of

    out = copy_of(sample_build, tmp_path)
    shard = sorted((out / "dialogues").glob("part-*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    try:
        code = cli.main([a.format(out=out, tmp=tmp_path) for a in argv])
    except SystemExit as exit:  # validate exits with its count of problems listed
        code = exit.code
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and str(shard.name) in err, err
    if argv[0] != "validate":
        assert len(err.strip().splitlines()) == 1 and "rcforge validate OUT lists" in err


@pytest.mark.parametrize("argv", [["build", str(SAMPLE_RECIPE), "--out", "nope://x", "--no-progress"],
                                  ["stats", "nope://x"], ["export", "llava", "nope://x", "x.json"],
                                  ["validate", "nope://x"], ["refilter", "nope://x", "--lambda", "0.5"]])
def test_an_unknown_storage_protocol_is_one_line(argv, capsys):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 1 and "Protocol not known: nope" in err and len(err.strip().splitlines()) == 1, err


def test_verbose_shows_the_traceback_behind_a_one_line_error():
    with pytest.raises(ValueError, match="Protocol not known"):
        cli.main(["-v", "stats", "nope://x"])
