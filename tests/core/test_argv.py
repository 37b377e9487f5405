"""upkeeper.argv: values that become command-line arguments."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from upkeeper import Params
from upkeeper.argv import ArgPath, Operand, check_operand, check_path


class Sample(Params):
    label: Operand = "x"
    where: ArgPath = "/srv"


@pytest.mark.parametrize("value", ["-delete", "--help", "-rf", "--repo=/x", "", "a\nb",
                                   "a\x00b", "tab\there", "del\x7f"])
def test_operands_refuse_options_and_control_characters(value):
    with pytest.raises(ValueError):
        check_operand(value)


@pytest.mark.parametrize("value", ["web01", "a-b", "x=1", "with space", "ünïcode", "./x"])
def test_operands_pass(value):
    assert check_operand(value) == value


@pytest.mark.parametrize("value", ["relative", "-x", "~/x", "", "/a\nb", "(", "!"])
def test_paths_must_be_absolute_or_dot_slash(value):
    with pytest.raises(ValueError):
        check_path(value)
    assert check_path("/srv/x") == "/srv/x" and check_path("./x") == "./x"


def test_param_types_name_the_param():
    with pytest.raises(ValidationError) as err:
        Sample.model_validate({"label": "--help"})
    assert err.value.errors()[0]["loc"] == ("label",)
    assert "would read it as an option" in str(err.value)
    with pytest.raises(ValidationError) as err:
        Sample.model_validate({"where": "-delete"})
    assert err.value.errors()[0]["loc"] == ("where",)
