"""Experiment parameters: the declaration (``Parameter``, ``takes``), its checks from Python and from ``-p`` text, and
the parameters the core's and the plugins' experiments really declare."""

from __future__ import annotations

import inspect

import pytest

from noisygrad.tour.parameters import Parameter, ParameterError, declared, takes
from noisygrad.tour.registry import experiments


@takes(
    Parameter("chains", int, 100, "independent chains", full=1000, low=10, high=10**6),
    Parameter("rate", float, 0.5, "a rate", low=0.0, high=1.0),
)
def _experiment(seed: int = 0, quick: bool = True, *, chains: int, rate: float) -> list[object]:
    """A stand-in experiment that returns what it was called with."""
    return [seed, quick, chains, rate]


def test_the_wrapper_fills_each_sizes_default_and_checks_what_it_is_given():
    assert _experiment() == [0, True, 100, 0.5]
    assert _experiment(seed=3, quick=False) == [3, False, 1000, 0.5]
    assert _experiment(chains=20, rate=1) == [0, True, 20, 1.0]
    with pytest.raises(ParameterError, match=r"parameter chains takes an integer in \[10, 1000000\], got 5"):
        _experiment(chains=5)
    with pytest.raises(TypeError, match="parameter chains takes an integer"):  # a TypeError too, for a wrong type
        _experiment(chains=20.0)
    with pytest.raises(ValueError, match="_experiment has no parameter chainz; it takes: chains, rate"):
        _experiment(chainz=20)
    with pytest.raises(ParameterError, match="got True"):
        _experiment(chains=True)  # a bool is not an integer here


def test_the_declarations_are_readable_without_calling():
    assert [p.name for p in declared(_experiment)] == ["chains", "rate"]
    shown = "(seed: 'int' = 0, quick: 'bool' = True, *, chains: 'int' = 100, rate: 'float' = 0.5) -> 'list[object]'"
    assert str(inspect.signature(_experiment)) == shown
    assert _experiment.__doc__ == "A stand-in experiment that returns what it was called with."


def test_an_undeclared_experiment_has_its_keyword_defaults_as_parameters():
    def coin(seed=0, quick=True, flips=400, label="x"):
        return []

    flips, label = declared(coin)
    assert (flips.name, flips.type, flips.default, flips.allowed()) == ("flips", int, 400, "an integer")
    assert (label.type, label.parse("y")) == (str, "y")


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        (int, " 1_000 ", 1000),
        (float, "1e-3", 1e-3),
        (float, "2", 2.0),
        (bool, "Yes", True),
        (bool, "0", False),
        (str, "a b", "a b"),
    ],
)
def test_parse_reads_command_line_text(kind, text, value):
    parsed = Parameter("p", kind, value, "").parse(text)
    assert parsed == value
    assert type(parsed) is kind


@pytest.mark.parametrize(
    ("parameter", "text", "message"),
    [
        (Parameter("n", int, 5, "", low=1), "0", r"parameter n takes an integer >= 1, got 0"),
        (Parameter("n", int, 5, "", high=9), "10", r"parameter n takes an integer <= 9, got 10"),
        (Parameter("x", float, 0.5, ""), "inf", r"parameter x takes a number, got inf"),
        (Parameter("x", float, 0.5, ""), "half", r"parameter x takes a number, got 'half'"),
        (Parameter("b", bool, True, ""), "2", r"parameter b takes true or false, got '2'"),
        (Parameter("m", str, "a", "", choices=("a", "b")), "c", r"parameter m takes one of 'a', 'b', got 'c'"),
    ],
)
def test_parse_refuses_naming_the_parameter_and_what_it_allows(parameter, text, message):
    with pytest.raises(ParameterError, match=message):
        parameter.parse(text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "seed"}, "other than seed and quick"),
        ({"name": "two words"}, "must be an identifier"),
        ({"type": list}, "type must be one of int, float, bool, str"),
        ({"default": 0}, r"parameter n takes an integer in \[1, 10\], got 0"),
        ({"full": 11}, r"parameter n takes an integer in \[1, 10\], got 11"),
        ({"low": 5, "high": 2, "default": 5}, "low=5 is above high=2"),
        ({"type": str, "default": "a", "low": None, "high": None, "choices": ("b",)}, "one of 'b', got 'a'"),
        ({"type": str, "default": "a"}, "low and high apply to int and float parameters only"),
    ],
)
def test_a_declaration_is_checked_when_made(kwargs, message):
    args = {"name": "n", "type": int, "default": 3, "help": "", "low": 1, "high": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        Parameter(**args)


def test_takes_refuses_parameters_the_function_does_not_take():
    with pytest.raises(ValueError, match="declares parameter chains but does not take it by keyword"):
        takes(Parameter("chains", int, 1, ""))(lambda seed=0, quick=True: [])
    with pytest.raises(ValueError, match="parameter names must be distinct"):
        takes(Parameter("a", int, 1, ""), Parameter("a", int, 2, ""))


def test_list_describe_texts():
    p = Parameter("chains", int, 4000, "independent chains", full=40000, low=100, high=10**7)
    assert p.defaults_text() == "4000 (full: 40000)"
    assert p.allowed() == "an integer in [100, 10000000]"
    assert p.as_dict() == {
        "name": "chains",
        "type": "int",
        "default": 4000,
        "full": 40000,
        "allowed": "an integer in [100, 10000000]",
        "help": "independent chains",
    }
    assert Parameter("on", bool, False, "").defaults_text() == "false"


CORE = {
    "core.heavy-tails": ["chains"],
    "core.lyapunov": ["chains"],
    "core.minibatch-variance": ["batch", "draws"],
    "core.noise-ball": ["chains", "steps"],
    "core.sgld-boltzmann": ["chains"],
    "core.spsa-variance": ["draws"],
}
PLUGINS = {
    "bio.evolution": ["replicates", "generations"],
    "bio.pruning-passage": ["trials"],
    "pinn.adam-identity": ["steps"],
    "pinn.collocation-noise": ["batch", "draws"],
    "quantum.shot-variance": ["repeats", "shots"],
    "quantum.spsa-h2": ["runs"],
    "quantum.adaptive-shots": ["steps"],
}


def _declared(names):
    found = experiments()
    out = {}
    for name in names:
        params = found[name].parameters()
        assert all(p.help for p in params), name  # every declaration says what it sets
        out[name] = [p.name for p in params]
    return out


def test_the_core_experiments_declare_their_parameters():
    assert _declared(CORE) == CORE


@pytest.mark.slow  # imports DeepXDE and Qiskit (about 10 s here)
def test_the_plugin_experiments_declare_their_parameters():
    assert _declared(PLUGINS) == PLUGINS
