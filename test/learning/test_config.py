import dataclasses

import pytest

from crl_ros.learning.agents import default_config, make_agent
from crl_ros.learning.agents.stable_crl import StableCRLConfig
from crl_ros.learning.config import apply_overrides, config_from_dict, config_to_dict, load_yaml_overrides


def test_round_trip_through_dict():
    cfg = apply_overrides(StableCRLConfig(), ["encoder_channels=[8, 16]", "encoder_kernels=[3,3]",
                                              "encoder_strides=[2,2]", "encoder_paddings=[1,1]"])
    data = config_to_dict(cfg)
    assert data["encoder_channels"] == [8, 16]
    assert config_from_dict(StableCRLConfig, data) == cfg


def test_overrides_parse_and_type_check():
    cfg = apply_overrides(default_config("stable_crl"),
                          ["batch_size=256", "lr=1e-4", "layer_norm=false", "critic_loss=mc", "bc_coef=0"])
    assert (cfg.batch_size, cfg.lr, cfg.layer_norm, cfg.critic_loss, cfg.bc_coef) == (256, 1e-4, False, "mc", 0.0)
    assert isinstance(cfg.bc_coef, float)
    with pytest.raises(ValueError, match="batch_size"):
        apply_overrides(cfg, ["batch_size=big"])
    with pytest.raises(ValueError, match="layer_norm"):
        apply_overrides(cfg, ["layer_norm=3"])
    with pytest.raises(ValueError, match="'td', 'mc'"):
        apply_overrides(cfg, ["critic_loss=nce"])
    with pytest.raises(ValueError, match="augment_terms"):
        apply_overrides(cfg, ["augment_terms=[bc, colour]"])


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match="batchsize.*valid keys:.*batch_size"):
        apply_overrides(StableCRLConfig(), ["batchsize=3"])
    with pytest.raises(ValueError, match="'nope'"):
        config_from_dict(StableCRLConfig, {"nope": 1})
    with pytest.raises(ValueError, match="not of the form"):
        apply_overrides(StableCRLConfig(), ["batch_size"])


def test_nested_configs_and_yaml(tmp_path):
    @dataclasses.dataclass
    class Inner:
        width: int = 1

    @dataclasses.dataclass
    class Outer:
        inner: Inner = dataclasses.field(default_factory=Inner)
        name: str = "a"

    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  width: 5\nname: b\n")
    overrides = load_yaml_overrides(path)
    assert overrides == {"inner.width": 5, "name": "b"}
    cfg = apply_overrides(Outer(), overrides)
    assert cfg == Outer(Inner(5), "b")
    assert apply_overrides(cfg, ["inner.width=7"]).inner.width == 7
    assert config_from_dict(Outer, {"inner": {"width": 2}}).inner == Inner(2)
    with pytest.raises(ValueError, match="inner.depth"):
        apply_overrides(cfg, ["inner.depth=2"])


def test_registry():
    with pytest.raises(ValueError, match="stable_crl, gcbc, gciql"):
        default_config("ppo")
    agent = make_agent("gcbc", {"hidden_width": 8, "hidden_depth": 1, "encoder_channels": [4, 4, 4]},
                       (32, 32, 3), 2, "cpu")
    assert agent.config.hidden_width == 8 and agent.name == "gcbc"
